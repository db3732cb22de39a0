"""``kedro mlflow run open | close``: one MLflow run for a pipeline that an orchestrator runs
as many tasks (Airflow, Argo, Kubeflow, AWS Batch, a shell fan-out)::

    export MLFLOW_RUN_ID=$(kedro mlflow run open --pipeline __default__)
    kedro run --nodes split_data            # every task, anywhere, with MLFLOW_RUN_ID set
    kedro run --nodes fit_preprocessor
    ...
    kedro mlflow run close --status auto    # FAILED if a task failed, KILLED if one was cancelled

``open_pipeline_run`` and ``close_pipeline_run`` are the same steps for Python callers
(the Airflow DAG template calls them in its first and last task). ``mlflow`` is imported
only when a step runs. See ``tracking/orchestrated.py`` for what each task records.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from kedro_mlflow_starter.errors import OrchestratedRunError
from kedro_mlflow_starter.framework.project_root import find_project_root


@contextmanager
def _project_session(project_path: Path, env: str | None, conf_source: str | None,
                     runtime_params: Mapping[str, Any] | None = None) -> Iterator[tuple[Any, Any, Any, str]]:
    """(context, MlflowConfig, pipelines, session id) of the project, with the tracking env in place."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    from kedro_mlflow_starter.config import load_mlflow_config
    from kedro_mlflow_starter.tracking.store import file_store_env, http_retry_env

    metadata = bootstrap_project(project_path)
    with KedroSession.create(project_path=project_path, env=env, conf_source=conf_source or None,
                             runtime_params=dict(runtime_params or {})) as session:
        context = session.load_context()
        config = getattr(context, "mlflow", None) or load_mlflow_config(
            context.config_loader, project_path, metadata.package_name)
        from kedro.framework.project import pipelines

        env_values = {**http_retry_env(), **file_store_env(config.tracking_uri()),
                      "MLFLOW_TRACKING_URI": config.tracking_uri()}
        if config.registry_uri():
            env_values["MLFLOW_REGISTRY_URI"] = config.registry_uri()
        with _environ(env_values):
            yield context, config, pipelines, session.session_id


@contextmanager
def _environ(values: Mapping[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _pipeline(pipelines: Any, name: str) -> Any:
    try:
        return pipelines[name]
    except KeyError:
        available = ", ".join(sorted(pipelines.keys())) or "none"
        raise OrchestratedRunError(
            f"No pipeline named '{name}' is registered. Registered pipelines: {available}.") from None


def _log_whole_pipeline_lineage(config: Any, pipeline: Any, catalog: Any, run_params: Mapping[str, Any],
                                run: Any) -> None:
    """The run's ``kedro/`` folder (configuration, pipeline graph) for the whole pipeline: the
    tasks each see a slice and leave it to this step."""
    switches = config.tracking.lineage
    if not (switches.config or switches.pipeline_graph):
        return
    from kedro_mlflow_starter.pipeline import PipelineML
    from kedro_mlflow_starter.tracking.lineage_recorder import LineageRecorder

    recorder = LineageRecorder(switches, pipeline, catalog, run_params, project_path=config.project_path,
                               secret_patterns=config.tracking.params.secret_patterns,
                               logs_pipeline_model=isinstance(pipeline, PipelineML))
    recorder.log_kedro_folder(run.client, run.run_id)


def _params_loader(params: Mapping[str, Any]) -> Any:
    """``params:a.b`` / ``parameters`` read from ``context.params`` (no catalog load, no log line)."""
    def load(name: str) -> Any:
        if name == "parameters":
            return dict(params)
        value: Any = params
        for part in name[len("params:"):].split("."):
            value = value[part]
        return value

    return load


FILTER_TAGS = {"tags": "kedro.filter.tags", "node_names": "kedro.filter.nodes"}
"""The run tags where ``open --tags/--nodes`` writes its filter, so that ``close`` expects those nodes only."""


def _filtered(pipeline: Any, tags: Iterable[str], node_names: Iterable[str]) -> Any:
    """``pipeline`` narrowed as ``kedro run --tags ... --nodes ...`` narrows it (both: nodes with both)."""
    tags, node_names = list(tags), list(node_names)
    if not tags and not node_names:
        return pipeline
    try:
        narrowed = pipeline.filter(tags=tags or None, node_names=node_names or None)
    except ValueError as error:  # Kedro: "Pipeline does not contain nodes named ...", "... no nodes after ..."
        if tags and "no nodes" in str(error):
            raise OrchestratedRunError(
                f"No node of the pipeline has the tags {', '.join(tags)}"
                + (f" among the nodes {', '.join(node_names)}" if node_names else "")
                + ": check --tags (the tags given to node(...) in the pipeline).") from None
        raise OrchestratedRunError(f"--tags/--nodes: {error}") from None
    return narrowed


def _check_reachable(config: Any) -> None:
    from kedro_mlflow_starter.tracking.store import check_reachable

    check_reachable(config.tracking_uri(), config.server.connect_timeout)


def open_pipeline_run(  # noqa: PLR0913
    project_path: str | os.PathLike[str],
    pipeline_name: str = "__default__",
    env: str | None = None,
    conf_source: str | None = None,
    run_name: str | None = None,
    params: Mapping[str, Any] | None = None,
    tags: Iterable[str] = (),
    node_names: Iterable[str] = (),
) -> dict[str, str]:
    """Create the MLflow run of a whole pipeline run; returns its ids (``run_id``...).

    The run holds the experiment of ``mlflow.yml``, the tags a ``kedro run`` of the pipeline
    would log, and the params of every node of the pipeline. It stays RUNNING for the tasks.
    ``tags``/``node_names`` narrow the pipeline as ``kedro run --tags/--nodes`` does: the run
    then expects (and ``close`` checks) only those nodes. Named like a ``kedro run``
    (``default 15:32:08``) unless ``run_name`` or ``tracking.run.name`` says otherwise.
    """
    from kedro_mlflow_starter.config.redaction import redact_uri
    from kedro_mlflow_starter.pipeline import PipelineML
    from kedro_mlflow_starter.tracking.orchestrated import ORCHESTRATED_TAG
    from kedro_mlflow_starter.tracking.params import pipeline_parameters, prepare_params
    from kedro_mlflow_starter.tracking.run_tags import open_command, run_tags

    root = Path(project_path).resolve()
    filter_tags, filter_nodes = sorted(set(tags)), sorted(set(node_names))
    with _project_session(root, env, conf_source, params) as (context, config, pipelines, session_id):
        if pipeline_name in config.tracking.disable_tracking.pipelines:
            raise OrchestratedRunError(
                f"Tracking is disabled for pipeline '{pipeline_name}' in mlflow.yml "
                "(tracking.disable_tracking.pipelines): there is no run to open. Remove it from that list, "
                "or run the tasks without MLFLOW_RUN_ID.")
        pipeline = _filtered(_pipeline(pipelines, pipeline_name), filter_tags, filter_nodes)
        catalog = context.catalog
        if isinstance(pipeline, PipelineML):  # fail now, not in the last task
            from kedro_mlflow_starter.models.logging import check_pipeline_ml_catalog

            check_pipeline_ml_catalog(pipeline, catalog)
        prepared = prepare_params(pipeline_parameters(pipeline.inputs(), _params_loader(context.params)),
                                  config.tracking.params)
        run_params = {"pipeline_names": [pipeline_name], "env": env, "runtime_params": dict(params or {}),
                      "run_id": session_id, "tags": filter_tags, "node_names": filter_nodes}
        secret_patterns = config.tracking.params.secret_patterns
        run_tag_values = run_tags(run_params, root, config.package_name, secret_patterns)
        # No `kedro run` of the whole pipeline ever runs: the command is the step that opened the run.
        run_tag_values["kedro.command"] = open_command(run_params, secret_patterns)
        run_tag_values.update({ORCHESTRATED_TAG: "true", "kedro.runner": "orchestrated"})
        for key, values in (("tags", filter_tags), ("node_names", filter_nodes)):
            if values:
                run_tag_values[FILTER_TAGS[key]] = ",".join(values)
        # This process ends now while the run lives on: `kedro mlflow stale-runs` must not take
        # the run for one whose `kedro run` died (it judges such runs by age instead).
        run_tag_values.pop("kedro.pid", None)
        for notice in prepared.notices():
            click.echo(notice, err=True)
        from kedro_mlflow_starter.tracking.run import TrackedRun, default_run_name

        _check_reachable(config)
        run = TrackedRun.create(config, run_name or default_run_name(config, [pipeline_name]), run_tag_values)
        run.log_params_and_tags(prepared.params, prepared.tags)
        _log_whole_pipeline_lineage(config, pipeline, catalog, run_params, run)
        return {
            "run_id": run.run_id,
            "run_name": run.run_name,
            "experiment_id": run.experiment_id,
            "experiment_name": run.experiment_name,
            "tracking_uri": redact_uri(config.tracking_uri()),
            "pipeline": pipeline_name,
        }


def close_pipeline_run(  # noqa: PLR0913
    project_path: str | os.PathLike[str],
    run_id: str,
    status: str = "auto",
    env: str | None = None,
    conf_source: str | None = None,
    failed_tasks: Iterable[str] = (),
    killed_tasks: Iterable[str] = (),
    pipeline_name: str | None = None,
) -> dict[str, Any]:
    """End the run opened by :func:`open_pipeline_run` with its honest status.

    ``status="auto"``: FAILED if a task recorded a failure (or is in ``failed_tasks``, as the
    orchestrator saw it), KILLED if one was cancelled, else FINISHED. A FINISHED run of a
    ``pipeline_ml_factory`` pipeline gets its pipeline model, built from the artifacts the
    tasks persisted. Closing a run that is already closed changes nothing (retries are safe).
    """
    from kedro_mlflow_starter.config.redaction import redact_uri
    from kedro_mlflow_starter.errors import RunNotFoundError
    from kedro_mlflow_starter.framework.console import mlflow_prints_logged
    from kedro_mlflow_starter.pipeline import PipelineML
    from kedro_mlflow_starter.tracking.orchestrated import derive_outcome, is_orchestrated
    from kedro_mlflow_starter.tracking.run import TrackedRun
    from kedro_mlflow_starter.tracking.run_roles import GroupClose

    root = Path(project_path).resolve()
    with _project_session(root, env, conf_source) as (context, config, pipelines, _):
        _check_reachable(config)
        try:
            tracked = TrackedRun.attach(config, run_id)
        except RunNotFoundError as error:
            raise OrchestratedRunError(
                f"MLflow run '{run_id}' was not found in {redact_uri(config.tracking_uri())}: give the id that "
                "`kedro mlflow run open` printed, and check that the tasks and this step read the same mlflow.yml "
                "(--env, --conf-source)."
            ) from error
        tags = tracked.tags
        if not is_orchestrated(tags):
            raise OrchestratedRunError(
                f"MLflow run '{run_id}' was not opened by `kedro mlflow run open` (it has no "
                "kedro.orchestrated tag); a `kedro run` closes its own run.")
        current = tracked.client.get_run(run_id).info.status
        if current != "RUNNING":
            return {"run_id": run_id, "status": current, "already_closed": True, "model_uri": None,
                    "summary": f"already {current}"}
        name = pipeline_name or tags.get("kedro.pipeline_names", "__default__")
        pipeline = _filtered(_pipeline(pipelines, name), _tag_list(tags, FILTER_TAGS["tags"]),
                             _tag_list(tags, FILTER_TAGS["node_names"]))
        outcome = derive_outcome(tags, status, failed_tasks, killed_tasks,
                                 expected_nodes=sorted(node.name for node in pipeline.nodes))

        def log_model() -> str | None:
            from kedro_mlflow_starter.models.logging import log_pipeline_model

            with mlflow_prints_logged():  # MLflow's bare registration prints: one log line
                return log_pipeline_model(pipeline, context.catalog, run_id, produced=pipeline.all_outputs())

        tracked.role = role = GroupClose(outcome, log_model if isinstance(pipeline, PipelineML) else None,
                                         pipeline_time=config.tracking.lineage.node_timings)
        problem = tracked.close(outcome.status, announce=False)
        if problem:
            raise OrchestratedRunError(f"MLflow run '{run_id}' could not be closed ({problem}): run "
                                       "`kedro mlflow run close` again once the tracking server is back.")
        model_uri = role.model_uri
        if model_uri and not str(model_uri).startswith("models:/"):
            model_uri = f"models:/{model_uri}"
        return {"run_id": run_id, "status": outcome.status, "already_closed": False, "model_uri": model_uri,
                "summary": outcome.describe(), "failed_tasks": outcome.failed, "killed_tasks": outcome.killed}


def replay_pending_runs(project_path: str | os.PathLike[str], run_id: str | None = None, env: str | None = None,
                        conf_source: str | None = None) -> list[Any]:
    """Log what outages kept in the project's pending folder into each run (``run_id``: that one
    only), and end each run with the status it earned. See ``tracking/replay.py``."""
    from kedro_mlflow_starter.tracking.client import client_for
    from kedro_mlflow_starter.tracking.replay import PENDING_ROOT, Session, pending_dir, pending_runs, replay_run

    root = Path(project_path).resolve()
    run_ids = [run_id] if run_id else pending_runs(root)
    if run_id and not (pending_dir(root, run_id)).is_dir():
        raise OrchestratedRunError(
            f"Nothing is kept for MLflow run '{run_id}' in {root / PENDING_ROOT}: check the id (the failure "
            "report of the run names it), or leave out --run-id to replay every run kept there.")
    if not run_ids:
        return []

    def open_session(run_env: str | None, runtime_params: Mapping[str, Any]) -> Any:
        @contextmanager
        def session() -> Iterator[tuple[Any, Any, Any]]:
            with _project_session(root, env or run_env, conf_source, runtime_params) as (context, config, pipelines, _):
                yield context, config, pipelines
        return session()

    session = Session(open_session)
    try:
        _, config, _ = session.get(None, {})
        _check_reachable(config)
        client = client_for(config.tracking_uri(), config.registry_uri())
        return [replay_run(client, pending_dir(root, pending), pending, session) for pending in run_ids]
    finally:
        session.close()


def _tag_list(tags: Mapping[str, str], key: str) -> list[str]:
    return [value for value in tags.get(key, "").split(",") if value]


# -- the click commands -------------------------------------------------------------------------


def _split_params(values: tuple[str, ...]) -> dict[str, Any]:
    """``--params a=1,b.c=x`` as ``kedro run`` reads it (values parsed as YAML scalars)."""
    import yaml

    params: dict[str, Any] = {}
    for item in ",".join(values).split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"'{item}' is not key=value.", param_hint="--params")
        *parents, leaf = key.strip().split(".")  # a.b=1 -> {"a": {"b": 1}}, as Kedro nests it
        target = params
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = yaml.safe_load(value.strip()) if value.strip() else ""
    return params


def _split_names(values: tuple[str, ...]) -> list[str]:
    """``--nodes a,b --nodes c`` as ``kedro run`` reads it: ``["a", "b", "c"]``."""
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


@click.group(name="run")
def run_group() -> None:
    """One MLflow run for a pipeline run an orchestrator splits into many tasks."""


@run_group.command(name="open")
@click.option("--pipeline", "-p", "pipeline_name", default="__default__", show_default=True,
              help="The registered pipeline the tasks run (its params are logged now).")
@click.option("--env", "-e", default=None, help="Kedro configuration environment (as in `kedro run --env`).")
@click.option("--conf-source", default=None, help="Path of the configuration folder (as in `kedro run`).")
@click.option("--run-name", default=None,
              help="Name of the run (default: tracking.run.name, else like a kedro run: 'default 15:32:08').")
@click.option("--tags", "-t", "tags", multiple=True,
              help="Only the nodes with these tags (`a,b` or repeated), as `kedro run --tags`: close expects those.")
@click.option("--nodes", "-n", "node_names", multiple=True,
              help="Only these nodes (`a,b` or repeated), as `kedro run --nodes`: close expects those.")
@click.option("--params", "params", multiple=True,
              help="Runtime parameters `key=value,...`, as given to `kedro run --params` (give the tasks the same).")
@click.option("--output", "-o", "output", type=click.Choice(["id", "env", "json"]), default="id", show_default=True,
              help="id: the run id alone; env: MLFLOW_RUN_ID=<id> (for `export`); json: ids, names, store.")
@click.option("--output-file", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Also write the --output text to this file (Kedro logs to stdout too; the file holds only it).")
def open_command(pipeline_name: str, env: str | None, conf_source: str | None, run_name: str | None,  # noqa: PLR0913
                 tags: tuple[str, ...], node_names: tuple[str, ...], params: tuple[str, ...], output: str,
                 output_file: str | None) -> None:
    """Create the run of the whole pipeline and print its id for the tasks (MLFLOW_RUN_ID).

    The id (or --output text) is always the last line of stdout: RUN_ID=$(kedro mlflow run open | tail -n 1).
    """
    opened = open_pipeline_run(find_project_root(), pipeline_name, env, conf_source, run_name, _split_params(params),
                               _split_names(tags), _split_names(node_names))
    if output == "json":
        text = json.dumps(opened)
    elif output == "env":
        text = f"MLFLOW_RUN_ID={opened['run_id']}"
    else:
        text = opened["run_id"]
    if output_file:
        Path(output_file).write_text(text + "\n", encoding="utf-8")
    click.echo(
        f"Opened MLflow run '{opened['run_name']}' ({opened['run_id']}) in experiment "
        f"'{opened['experiment_name']}' at {opened['tracking_uri']}. Run every task with "
        f"MLFLOW_RUN_ID={opened['run_id']}, then `kedro mlflow run close --run-id {opened['run_id']}`.",
        err=True,
    )
    click.echo(text)


@run_group.command(name="close")
@click.option("--run-id", "-r", default=None, envvar="MLFLOW_RUN_ID", show_envvar=True,
              help="The run `kedro mlflow run open` printed.")
@click.option("--status", "-s", type=click.Choice(["auto", "FINISHED", "FAILED", "KILLED"]), default="auto",
              show_default=True,
              help="auto: FAILED if a task failed, KILLED if one was cancelled, else FINISHED. An explicit "
                   "status is never better than the tasks' outcomes.")
@click.option("--failed-task", "failed_tasks", multiple=True,
              help="A task the orchestrator saw fail (repeatable), e.g. one killed before it could record it.")
@click.option("--killed-task", "killed_tasks", multiple=True, help="A task the orchestrator cancelled (repeatable).")
@click.option("--pipeline", "-p", "pipeline_name", default=None,
              help="The pipeline whose model to log (default: the one given to `open`).")
@click.option("--env", "-e", default=None, help="Kedro configuration environment (as in `kedro run --env`).")
@click.option("--conf-source", default=None, help="Path of the configuration folder (as in `kedro run`).")
@click.option("--output", "-o", "output", type=click.Choice(["text", "json"]), default="text", show_default=True)
def close_command(run_id: str | None, status: str, failed_tasks: tuple[str, ...], killed_tasks: tuple[str, ...],
                  pipeline_name: str | None, env: str | None, conf_source: str | None, output: str) -> None:
    """End the run with its honest status (and log the pipeline model of a PipelineML)."""
    if not run_id:
        raise click.UsageError("Give --run-id (the id `kedro mlflow run open` printed) or set MLFLOW_RUN_ID.")
    closed = close_pipeline_run(find_project_root(), run_id, status, env, conf_source, failed_tasks, killed_tasks,
                                pipeline_name)
    if output == "json":
        click.echo(json.dumps(closed))
        return
    if closed["already_closed"]:
        click.echo(f"MLflow run {run_id} is already {closed['status']}; nothing changed.")
        return
    model = f", pipeline model {closed['model_uri']}" if closed["model_uri"] else ""
    click.echo(f"MLflow run {run_id} {closed['status']}: {closed['summary']}{model}.")


@run_group.command(name="replay")
@click.option("--run-id", "-r", default=None,
              help="The run to replay (default: every run kept in .kedro-mlflow/pending/ of the project).")
@click.option("--env", "-e", default=None, help="Kedro configuration environment (as in `kedro run --env`).")
@click.option("--conf-source", default=None, help="Path of the configuration folder (as in `kedro run`).")
def replay_command(run_id: str | None, env: str | None, conf_source: str | None) -> None:
    """Log what could not be logged during an outage into its run, and end the run with the status it earned.

    What is replayed was kept in .kedro-mlflow/pending/<run id>/ of the project (metric values and
    steps, copies of artifacts and models, the pipeline model, the run's lineage); each item is removed
    once it is logged, and the folder when all are.
    """
    results = replay_pending_runs(find_project_root(), run_id, env, conf_source)
    if not results:
        click.echo("Nothing to replay: no run is kept in .kedro-mlflow/pending/.")
        return
    for result in results:
        click.echo(result.describe())
    if any(result.failed for result in results):
        raise click.ClickException("Some items were not replayed (listed above); they stay kept: run "
                                   "`kedro mlflow run replay` again once the cause is fixed.")
