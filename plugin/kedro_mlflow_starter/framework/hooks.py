"""``MlflowHook``: one honest MLflow run per ``kedro run``.

Registered through the ``kedro.hooks`` entry point (opt out with
``DISABLE_HOOKS_FOR_PLUGINS = ("kedro-mlflow-starter",)`` in settings.py). Loading this
module and creating the context never imports ``mlflow``; the first tracking call does.
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl

from kedro_mlflow_starter.config import MlflowConfig, load_mlflow_config
from kedro_mlflow_starter.config.credentials import export_credentials
from kedro_mlflow_starter.config.run_names import random_run_name
from kedro_mlflow_starter.framework.cli_errors import install_cli_error_format
from kedro_mlflow_starter.tracking.current import PublishedEnvironment

logger = logging.getLogger(__name__)

RESOLVER = "km.random_name"


class MlflowHook:
    """Tracks every ``kedro run`` in MLflow as configured by ``conf/*/mlflow.yml``.

    A thin adapter from Kedro's hook specifications to ``tracking.run.TrackedRun``, which
    owns the run; this class only decides *whether* a pipeline run is tracked.
    """

    def __init__(self) -> None:
        self.config: MlflowConfig | None = None
        self._run: Any = None  # tracking.run.TrackedRun while a tracked pipeline runs
        self._untracked = PublishedEnvironment()
        self._untracked_reason: str | None = None
        self._lineage: Any = None  # tracking.lineage_recorder.LineageRecorder while a tracked pipeline runs
        self._session = PublishedEnvironment()  # the store of mlflow.yml, for the whole session

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        if self._run is not None:  # a previous session in this process was interrupted (Ctrl-C in a notebook)
            self._run.close("KILLED")
            self._run = None
        self._untracked_reason = None
        _register_resolver()
        _show_our_messages()
        install_cli_error_format()
        self.config = load_mlflow_config(context.config_loader, Path(context.project_path), _package_name())
        context.mlflow = self.config
        if self.config.server.credentials:
            export_credentials(context.config_loader, self.config.server.credentials)
        self._publish_session_store(context)

    # -- session-wide store and the node's active run (kedro-mlflow compatibility) -----------
    # Once a session read mlflow.yml, every dataset and fluent call of the session talks to the
    # store it names, tracked or not (untracked pipelines, notebooks after load_context()).
    # Inside a node, `mlflow.active_run()` is the Kedro run, in every runner's workers.

    def _publish_session_store(self, context: Any) -> None:
        from kedro_mlflow_starter.tracking.current import register_request_header_provider
        from kedro_mlflow_starter.tracking.store import file_store_env

        config = self.config
        from kedro_mlflow_starter.tracking.user_run import remember_user_run_store

        remember_user_run_store()  # where the user's active run was opened, before the store changes
        self._session.restore()  # the previous session's store, if any
        uri = config.tracking_uri()
        self._session.set(file_store_env(uri))
        self._session.store(uri, config.registry_uri())
        register_request_header_provider(config.server.request_header_provider, context)

    @hook_impl
    def on_node_error(self) -> None:
        from kedro_mlflow_starter.tracking.current import leave_node_run

        leave_node_run()

    @hook_impl
    def after_catalog_created(self, catalog: Any) -> None:
        from kedro_mlflow_starter.framework.catalog_checks import bind_mlflow_datasets

        bind_mlflow_datasets(catalog)

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        config = self.config
        if config is None:  # the hook was registered after the context was created
            return
        pipeline_names = sorted(run_params.get("pipeline_names") or ["__default__"])
        disabled = set(config.tracking.disable_tracking.pipelines)
        if disabled and all(name in disabled for name in pipeline_names):
            self._run_untracked(f"tracking is disabled for pipeline(s) {', '.join(pipeline_names)} in mlflow.yml")
            return
        # A bad catalog entry or parameter fails here, before any node runs and before the
        # store is touched: no stray run is left behind.
        from kedro_mlflow_starter.framework.catalog_checks import check_catalog_before_run
        from kedro_mlflow_starter.tracking.params import pipeline_parameters, prepare_params, read_quietly
        from kedro_mlflow_starter.tracking.retries import shared_run_environment
        from kedro_mlflow_starter.tracking.run import TrackedRun, default_run_name

        check_catalog_before_run(pipeline, catalog)
        from kedro_mlflow_starter.tracking.switches import check_switches

        check_switches(config.tracking)
        prepared = prepare_params(pipeline_parameters(pipeline.inputs(), read_quietly(catalog)), config.tracking.params)
        run = TrackedRun.open(config, run_params, prepared, partial(default_run_name, config, pipeline_names))
        if run is None:  # unreachable store and `on_unreachable: run_untracked`
            self._run_untracked("the tracking store is unreachable and server.on_unreachable is run_untracked",
                                warn_at_end=True)
            return
        if run.task is not None:  # one task of an orchestrated run: it reports these nodes
            run.task_nodes = sorted(node.name for node in pipeline.nodes)
        run.publish({**_model_artifacts_to_copy(pipeline, catalog, run_params, one_task=run.task is not None),
                     **shared_run_environment(run.shared)})
        self._run = run
        from kedro_mlflow_starter.tracking.switches import start_run_switches

        start_run_switches(config.tracking, run.run_id, run_params.get("runner"))  # active run, autolog, system metrics
        from kedro_mlflow_starter.pipeline.pipeline_ml import warn_if_model_not_logged

        if run.task is None:  # one task of a group run logs no model: `kedro mlflow run close` does
            warn_if_model_not_logged(pipeline)  # the user's own filter dropped the model: say it once
        self._lineage = _lineage_recorder(config, pipeline, catalog, run_params)

    # -- lineage (issue 14): Kedro's dataset and node events, forwarded to the recorder -----------

    @hook_impl
    def before_dataset_loaded(self, dataset_name: str, node: Any) -> None:
        if self._lineage is not None and node is not None:
            self._lineage.node_started(node.name)

    @hook_impl
    def after_dataset_loaded(self, dataset_name: str, data: Any, node: Any) -> None:
        if self._lineage is not None:
            self._lineage.dataset_loaded(dataset_name, data)

    @hook_impl
    def before_node_run(self, node: Any) -> None:
        from kedro_mlflow_starter.tracking.current import enter_node_run

        enter_node_run()  # `mlflow.active_run()` in the node is the Kedro run
        if self._lineage is not None:
            self._lineage.node_started(node.name)

    @hook_impl
    def after_node_run(self, node: Any) -> None:
        from kedro_mlflow_starter.tracking.current import leave_node_run

        leave_node_run()
        if self._lineage is not None:
            self._lineage.node_finished(node.name)

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data: Any, node: Any) -> None:
        from kedro_mlflow_starter.models.snapshots import snapshot_saved

        snapshot_saved(dataset_name, data)  # in every worker: the run's own copy of a model artifact
        if self._lineage is not None and node is not None:
            self._lineage.node_finished(node.name)

    @hook_impl(wrapper=True)  # around the project's own after_pipeline_run, which sees the run active
    def after_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> Any:
        try:
            yield
        except BaseException as error:  # the project's after_pipeline_run failed
            self.on_pipeline_error(error, run_params, pipeline, catalog)
            raise
        run, self._run = self._run, None
        lineage, self._lineage = self._lineage, None
        if lineage is not None:
            lineage.pipeline_finished()  # the pipeline's time ends here, before model logging
        if run is None:
            if self._untracked_reason:
                logger.warning("MLflow: the pipeline ran UNTRACKED (%s); nothing of it is in MLflow.",
                               self._untracked_reason)
            self._untracked.restore()
            return
        try:
            model_uri = self._log_pipeline_model(run, pipeline, catalog, run_params)
            _finish_lineage(lineage, run)  # after the pipeline model, so metrics link to it too
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM while the model is logged
            run.close("KILLED")
            raise
        except BaseException:
            run.close("FAILED")
            raise
        run.finish(model_uri)

    @hook_impl(trylast=True)  # after the project's on_pipeline_error, which sees the run active
    def on_pipeline_error(self, error: Exception, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        run, self._run = self._run, None
        self._lineage = None
        if run is not None:
            run.note_error(error)
            run.close("FAILED")
        else:
            self._untracked.restore()

    # -- internals -------------------------------------------------------------------------

    def _run_untracked(self, reason: str, warn_at_end: bool = False) -> None:
        logger.info("MLflow: this run is not tracked: %s.", reason)
        if warn_at_end:
            self._untracked_reason = reason
        self._untracked.untracked()

    @staticmethod
    def _log_pipeline_model(run: Any, pipeline: Any, catalog: Any, run_params: dict[str, Any]) -> str | None:
        from kedro_mlflow_starter.pipeline import PipelineML

        if not isinstance(pipeline, PipelineML) or run.task is not None:
            return None  # an orchestrator's task runs a slice: `kedro mlflow run close` logs the model
        from kedro_mlflow_starter.errors import PipelineModelArtifactMissingError
        from kedro_mlflow_starter.framework.console import mlflow_prints_logged
        from kedro_mlflow_starter.models.logging import log_pipeline_model
        from kedro_mlflow_starter.tracking.failures import is_transient, record_failure

        try:
            with mlflow_prints_logged():  # MLflow's bare "Successfully registered model" prints: one log line
                return log_pipeline_model(pipeline, catalog, run.run_id, produced=pipeline.all_outputs())
        except Exception as error:
            # a copy missing because an outage stopped it is kept for replay: so is the model
            lost_copy = isinstance(error, PipelineModelArtifactMissingError) and run.failures()
            if not (is_transient(error) or lost_copy):
                raise
            names = sorted(run_params.get("pipeline_names") or ["__default__"])
            record_failure(
                f"the pipeline model of pipeline '{names[0]}'",
                None,
                error,
                replay={"kind": "pipeline_model", "pipeline": names[0], "env": run_params.get("env"),
                        "runtime_params": run_params.get("runtime_params") or {}},
            )
            return None


def _model_artifacts_to_copy(pipeline: Any, catalog: Any, run_params: dict[str, Any], one_task: bool) -> dict[str, str | None]:
    """The environment that makes every worker copy the pipeline model's artifacts into the run
    as they are saved: those of the pipeline that runs, and for one task of an orchestrated
    run, those of the registered pipelines it is a slice of (``close`` builds the model)."""
    from kedro_mlflow_starter.models.snapshots import plan_environment, snapshot_plan
    from kedro_mlflow_starter.pipeline import PipelineML

    models = [pipeline] if isinstance(pipeline, PipelineML) else []
    if one_task:
        from kedro.framework.project import pipelines

        for name in run_params.get("pipeline_names") or ["__default__"]:
            registered = pipelines.get(name)
            if isinstance(registered, PipelineML):
                models.append(registered)
    return plan_environment(snapshot_plan(pipeline, catalog, models) if models else {})


def _lineage_recorder(config: MlflowConfig, pipeline: Any, catalog: Any, run_params: dict[str, Any]) -> Any:
    """What the run records about what it was made from (issue 14), or None when all switched off."""
    switches = config.tracking.lineage
    if not any(switches.model_dump().values()):
        return None
    from kedro_mlflow_starter.pipeline import PipelineML
    from kedro_mlflow_starter.tracking.lineage_recorder import LineageRecorder

    return LineageRecorder(switches, pipeline, catalog, run_params, project_path=config.project_path,
                           secret_patterns=config.tracking.params.secret_patterns,
                           logs_pipeline_model=isinstance(pipeline, PipelineML))


def _finish_lineage(recorder: Any, run: Any) -> None:
    """Log what the recorder collected; an outage is recorded like any other item that was lost."""
    if recorder is None:
        return
    from kedro_mlflow_starter.tracking.failures import describe_error, is_transient, record_failure

    try:
        recorder.finish(run.client, run.run_id, run.experiment_id, one_task_of_many=run.task is not None)
    except Exception as error:
        if is_transient(error):
            record_failure("the run's lineage (dataset inputs, kedro/ config and pipeline, node timings)", None, error,
                           replay=recorder.replay_state(one_task_of_many=run.task is not None))
        else:
            logger.warning("MLflow: the run's lineage was not fully recorded: %s", describe_error(error))


def _register_resolver() -> None:
    from omegaconf import OmegaConf

    if OmegaConf.has_resolver(RESOLVER):
        return
    OmegaConf.register_new_resolver(RESOLVER, random_run_name, use_cache=False)


def _show_our_messages() -> None:
    """Kedro's default logging shows only the ``kedro`` logger at INFO; show ours too,
    unless the project's logging.yml configures it."""
    ours = logging.getLogger("kedro_mlflow_starter")
    if ours.level == logging.NOTSET:
        ours.setLevel(logging.INFO)


def _package_name() -> str | None:
    from kedro.framework.project import PACKAGE_NAME

    return PACKAGE_NAME


mlflow_hook = MlflowHook()
