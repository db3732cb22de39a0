"""``kedro mlflow run open | close | replay``: one MLflow run for a pipeline an orchestrator runs as many tasks; the
``*_pipeline_run(s)`` functions are the same steps for Python callers (docs/orchestrators.md)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from kedro.framework.cli.utils import split_node_names, split_string
from kedro.framework.project import pipelines

from kedro_mlflow_starter import compat
from kedro_mlflow_starter.config.redaction import redact_uri
from kedro_mlflow_starter.errors import OrchestratedRunError, RunNotFoundError, TrackingStoreUnreachableError
from kedro_mlflow_starter.framework.console import log_run_pipeline_model
from kedro_mlflow_starter.framework.project_session import Project, project_metadata, project_session
from kedro_mlflow_starter.models.logging import check_pipeline_ml_catalog
from kedro_mlflow_starter.pipeline import PipelineML
from kedro_mlflow_starter.tracking.client import client_for
from kedro_mlflow_starter.tracking.failures import describe_error, is_transient
from kedro_mlflow_starter.tracking.lineage_recorder import LineageRecorder
from kedro_mlflow_starter.tracking.orchestrated import ORCHESTRATED_TAG, derive_outcome, is_orchestrated
from kedro_mlflow_starter.tracking.params import pipeline_parameters, prepare_params, read_quietly
from kedro_mlflow_starter.tracking.replay import (
    PENDING_ROOT,
    Session,
    pending_dir,
    pending_runs,
    recorded_env,
    replay_run,
)
from kedro_mlflow_starter.tracking.run import TrackedRun, default_run_name
from kedro_mlflow_starter.tracking.run_roles import GroupClose
from kedro_mlflow_starter.tracking.run_tags import open_command, run_tags
from kedro_mlflow_starter.tracking.store import check_reachable

if TYPE_CHECKING:
    from kedro.framework.context import KedroContext
    from kedro.framework.startup import ProjectMetadata
    from kedro.pipeline import Pipeline

    from kedro_mlflow_starter.config import MlflowConfig
    from kedro_mlflow_starter.tracking.replay import ReplayResult

# The run tags where `open --tags/--nodes` writes its filter, so that `close` expects those nodes only.
FILTER_TAGS = {"tags": "kedro.filter.tags", "node_names": "kedro.filter.nodes"}


def _pipeline(pipelines: Mapping[str, Pipeline], name: str) -> Pipeline:
    try:
        return pipelines[name]
    except KeyError:
        available = ", ".join(sorted(pipelines.keys())) or "none"
        raise OrchestratedRunError(
            f"No pipeline named '{name}' is registered. Registered pipelines: {available}.") from None


def _filtered(pipeline: Pipeline, tags: Iterable[str], node_names: Iterable[str]) -> Pipeline:
    """``pipeline`` narrowed as ``kedro run --tags ... --nodes ...`` narrows it (both: nodes with both)."""
    tags, node_names = list(tags), list(node_names)
    if not tags and not node_names:
        return pipeline
    try:
        return pipeline.filter(tags=tags or None, node_names=node_names or None)
    except ValueError as error:  # Kedro: "Pipeline does not contain nodes named ...", "... no nodes after ..."
        if tags and "no nodes" in str(error):
            raise OrchestratedRunError(
                f"No node of the pipeline has the tags {', '.join(tags)}"
                + (f" among the nodes {', '.join(node_names)}" if node_names else "")
                + ": check --tags (the tags given to node(...) in the pipeline).") from None
        raise OrchestratedRunError(f"--tags/--nodes: {error}") from None


def _tag_list(tags: Mapping[str, str], key: str) -> list[str]:
    return [value for value in tags.get(key, "").split(",") if value]


def open_pipeline_run(  # noqa: PLR0913
    project_path: Project,
    pipeline_name: str = "__default__",
    env: str | None = None,
    conf_source: str | None = None,
    run_name: str | None = None,
    params: Mapping[str, Any] | None = None,
    tags: Iterable[str] = (),
    node_names: Iterable[str] = (),
) -> dict[str, str]:
    """Create the RUNNING MLflow run of a whole pipeline run (experiment, tags and params a ``kedro run``
    would log) and return its ids. ``tags``/``node_names`` narrow the pipeline as ``kedro run`` does:
    ``close`` then expects only those nodes."""
    filter_tags, filter_nodes = sorted(set(tags)), sorted(set(node_names))
    with project_session(project_path, env, conf_source, params) as (session, context, config):
        if pipeline_name in config.tracking.disable_tracking.pipelines:
            raise OrchestratedRunError(
                f"Tracking is disabled for pipeline '{pipeline_name}' in mlflow.yml "
                "(tracking.disable_tracking.pipelines): there is no run to open. Remove it from that list, "
                "or run the tasks without MLFLOW_RUN_ID.")
        pipeline = _filtered(_pipeline(pipelines, pipeline_name), filter_tags, filter_nodes)
        catalog = context.catalog
        if isinstance(pipeline, PipelineML):  # fail now, not in the last task
            check_pipeline_ml_catalog(pipeline, catalog)
        prepared = prepare_params(pipeline_parameters(pipeline.inputs(), read_quietly(catalog)), config.tracking.params)
        run_params = {"pipeline_names": [pipeline_name], "env": env, "runtime_params": dict(params or {}),
                      "run_id": session.session_id, "tags": filter_tags, "node_names": filter_nodes}
        secret_patterns = config.tracking.params.secret_patterns
        run_tag_values = run_tags(run_params, Path(config.project_path), config.package_name, secret_patterns)
        # No `kedro run` of the whole pipeline ever runs: the command is the step that opened the run.
        run_tag_values["kedro.command"] = open_command(run_params, secret_patterns)
        run_tag_values.update({ORCHESTRATED_TAG: "true", "kedro.runner": "orchestrated"})
        run_tag_values.update({FILTER_TAGS[key]: ",".join(values) for key, values in
                               (("tags", filter_tags), ("node_names", filter_nodes)) if values})
        # This process ends now while the run lives on: `kedro mlflow stale-runs` must not take
        # the run for one whose `kedro run` died (it judges such runs by age instead).
        run_tag_values.pop("kedro.pid", None)
        for notice in prepared.notices():
            click.echo(notice, err=True)
        check_reachable(config.tracking_uri(), config.server.connect_timeout)
        run = TrackedRun.create(config, run_name or default_run_name(config, [pipeline_name]), run_tag_values)
        run.log_params_and_tags(prepared.params, prepared.tags)
        switches = config.tracking.lineage  # the run's kedro/ folder for the whole pipeline: the tasks see slices
        if switches.config or switches.pipeline_graph:
            LineageRecorder(switches, pipeline, catalog, run_params, project_path=config.project_path,
                            secret_patterns=secret_patterns, logs_pipeline_model=isinstance(pipeline, PipelineML),
                            ).log_kedro_folder(run.client, run.run_id)
        return {"run_id": run.run_id, "run_name": run.run_name, "experiment_id": run.experiment_id,
                "experiment_name": run.experiment_name, "tracking_uri": redact_uri(config.tracking_uri()),
                "pipeline": pipeline_name}


def close_pipeline_run(  # noqa: PLR0913
    project_path: Project,
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
    with project_session(project_path, env, conf_source) as (_, context, config):
        check_reachable(config.tracking_uri(), config.server.connect_timeout)
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

        log_model = partial(log_run_pipeline_model, pipeline, context.catalog, run_id)
        tracked.role = role = GroupClose(outcome, log_model if isinstance(pipeline, PipelineML) else None,
                                         pipeline_time=config.tracking.lineage.node_timings)
        problem = tracked.close(outcome.status, announce=False)
        if problem:
            raise OrchestratedRunError(f"MLflow run '{run_id}' could not be closed ({problem}): run "
                                       "`kedro mlflow run close` again once the tracking server is back.")
        return {"run_id": run_id, "status": outcome.status, "already_closed": False, "model_uri": role.model_uri,
                "summary": outcome.describe(), "failed_tasks": outcome.failed, "killed_tasks": outcome.killed}


def replay_pending_runs(project_path: Project, run_id: str | None = None, env: str | None = None,
                        conf_source: str | None = None) -> list[ReplayResult]:
    """Log what outages kept in the project's pending folder into each run (``run_id``: that one
    only), and end each run with the status it earned. See ``tracking/replay.py``."""
    root = Path(getattr(project_path, "project_path", project_path)).resolve()
    run_ids = [run_id] if run_id else pending_runs(root)
    if run_id and not pending_dir(root, run_id).is_dir():
        raise OrchestratedRunError(
            f"Nothing is kept for MLflow run '{run_id}' in {root / PENDING_ROOT}: check the id (the failure "
            "report of the run names it), or leave out --run-id to replay every run kept there.")
    if not run_ids:
        return []

    @contextmanager
    def open_session(run_env: str | None, runtime_params: Mapping[str, Any],
                     ) -> Iterator[tuple[KedroContext, MlflowConfig, Mapping[str, Pipeline]]]:
        with project_session(project_path, env or run_env, conf_source, runtime_params) as (_, context, config):
            yield context, config, pipelines

    session = Session(open_session)
    try:
        results = []
        for pending in run_ids:  # each in the store of the --env it ran with (unless --env is given)
            _, config, _ = session.get(recorded_env(pending_dir(root, pending)), {})
            results.append(_replay_into_store(config, root, pending, session))
        return results
    finally:
        session.close()


def _replay_into_store(config: MlflowConfig, root: Path, run_id: str, session: Session) -> ReplayResult:
    uri = redact_uri(config.tracking_uri())
    again = (f"what is still kept in {root / PENDING_ROOT} stays there. Run `kedro mlflow run replay` again "
             "once the server answers.")
    try:
        check_reachable(config.tracking_uri(), config.server.connect_timeout)
    except TrackingStoreUnreachableError as error:
        raise OrchestratedRunError(f"MLflow tracking server {error.uri} is still unreachable ({error.problem}): "
                                   + again) from None
    client = client_for(config.tracking_uri(), config.registry_uri())
    try:
        return replay_run(client, pending_dir(root, run_id), run_id, session)
    except Exception as error:
        if getattr(error, "error_code", None) == "RESOURCE_DOES_NOT_EXIST":
            raise OrchestratedRunError(
                f"MLflow run {run_id} is not in {uri}: give `kedro mlflow run replay` the --env the run ran with "
                "(its mlflow.yml names the run's store).") from None
        if not is_transient(error):
            raise
        raise OrchestratedRunError(f"The tracking server went away while run {run_id} was replayed "
                                   f"({describe_error(error)}): " + again) from None


def _joined(split: Callable[[click.Context, click.Parameter, str], Any]) -> Callable[..., Any]:
    """A repeatable option read as one comma-separated value by Kedro's own ``kedro run`` callback."""
    return lambda ctx, param, values: split(ctx, param, ",".join(values))


_split_params = _joined(compat.split_params)
ENV_OPTION = click.option("--env", "-e", default=None, help="Kedro configuration environment (as in `kedro run --env`).")
CONF_SOURCE_OPTION = click.option("--conf-source", default=None,
                                  help="Path of the configuration folder (as in `kedro run`).")


@click.group(name="run")
def run_group() -> None:
    """One MLflow run for a pipeline run an orchestrator splits into many tasks."""


@run_group.command(name="open")
@click.option("--pipeline", "-p", "pipeline_name", default="__default__", show_default=True,
              help="The registered pipeline the tasks run (its params are logged now).")
@ENV_OPTION
@CONF_SOURCE_OPTION
@click.option("--run-name", default=None,
              help="Name of the run (default: tracking.run.name, else like a kedro run: 'default 15:32:08').")
@click.option("--tags", "-t", "tags", multiple=True, callback=_joined(split_string),
              help="Only the nodes with these tags (`a,b` or repeated), as `kedro run --tags`: close expects those.")
@click.option("--nodes", "-n", "node_names", multiple=True, callback=_joined(split_node_names),
              help="Only these nodes (`a,b` or repeated), as `kedro run --nodes`: close expects those.")
@click.option("--params", "params", multiple=True, callback=_split_params,
              help="Runtime parameters `key=value,...`, as given to `kedro run --params` (give the tasks the same).")
@click.option("--output", "-o", "output", type=click.Choice(["id", "env", "json"]), default="id", show_default=True,
              help="id: the run id alone; env: MLFLOW_RUN_ID=<id> (for `export`); json: ids, names, store.")
@click.option("--output-file", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Also write the --output text to this file (Kedro logs to stdout too; the file holds only it).")
@click.pass_obj
def open_cli(metadata: ProjectMetadata | None, pipeline_name: str, env: str | None,  # noqa: PLR0913
                 conf_source: str | None, run_name: str | None, tags: list[str], node_names: list[str],
                 params: dict[str, Any], output: str, output_file: str | None) -> None:
    """Create the run of the whole pipeline and print its id for the tasks (MLFLOW_RUN_ID).

    The id (or --output text) is always the last line of stdout: RUN_ID=$(kedro mlflow run open | tail -n 1).
    """
    opened = open_pipeline_run(project_metadata(metadata), pipeline_name, env, conf_source, run_name, params,
                               tags, node_names)
    text = {"json": json.dumps(opened), "env": f"MLFLOW_RUN_ID={opened['run_id']}"}.get(output, opened["run_id"])
    if output_file:
        Path(output_file).write_text(text + "\n", encoding="utf-8")
    click.echo(  # on lines of their own: a terminal of 80 columns never breaks the id or the command
        f"Opened MLflow run '{opened['run_name']}' in experiment '{opened['experiment_name']}' at\n"
        f"{opened['tracking_uri']}.\nRun every task with MLFLOW_RUN_ID={opened['run_id']}, then:\n"
        f"  kedro mlflow run close --run-id {opened['run_id']}",
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
@ENV_OPTION
@CONF_SOURCE_OPTION
@click.option("--output", "-o", "output", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.pass_obj
def close_cli(metadata: ProjectMetadata | None, run_id: str | None, status: str,  # noqa: PLR0913
                  failed_tasks: tuple[str, ...], killed_tasks: tuple[str, ...], pipeline_name: str | None,
                  env: str | None, conf_source: str | None, output: str) -> None:
    """End the run with its honest status (and log the pipeline model of a PipelineML)."""
    if not run_id:
        raise click.UsageError("Give --run-id (the id `kedro mlflow run open` printed) or set MLFLOW_RUN_ID.")
    closed = close_pipeline_run(project_metadata(metadata), run_id, status, env, conf_source, failed_tasks,
                                killed_tasks, pipeline_name)
    if output == "json":
        click.echo(json.dumps(closed))
    elif closed["already_closed"]:
        click.echo(f"MLflow run {run_id} is already {closed['status']}; nothing changed.")
    else:
        model = f", pipeline model {closed['model_uri']}" if closed["model_uri"] else ""
        click.echo(f"MLflow run {run_id} {closed['status']}: {closed['summary']}{model}.")


@run_group.command(name="replay")
@click.option("--run-id", "-r", default=None,
              help="The run to replay (default: every run kept in .kedro-mlflow/pending/ of the project).")
@ENV_OPTION
@CONF_SOURCE_OPTION
@click.pass_obj
def replay_cli(metadata: ProjectMetadata | None, run_id: str | None, env: str | None,
                   conf_source: str | None) -> None:
    """Log what could not be logged during an outage into its run, and end the run with the status it earned.

    What is replayed was kept in .kedro-mlflow/pending/<run id>/ of the project (metric values and
    steps, copies of artifacts and models, the pipeline model, the run's lineage); each item is removed
    once it is logged, and the folder when all are.
    """
    results = replay_pending_runs(project_metadata(metadata), run_id, env, conf_source)
    if not results:
        click.echo("Nothing to replay: no run is kept in .kedro-mlflow/pending/.")
        return
    for result in results:
        click.echo(result.describe())
    if any(result.failed for result in results):
        raise click.ClickException("Some items were not replayed (listed above); they stay kept: run "
                                   "`kedro mlflow run replay` again once the cause is fixed.")
