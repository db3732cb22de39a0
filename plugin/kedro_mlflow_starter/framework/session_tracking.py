"""One Kedro session's tracking: ``mlflow.yml`` read when the context is created, its store for the
whole session, and the start of each pipeline run: a ``TrackedRun`` with its parts plugged in (the
lineage recorder, the pipeline model), or an untracked run and why."""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kedro.framework import project as kedro_project
from omegaconf import OmegaConf

from kedro_mlflow_starter.config import MlflowConfig, load_mlflow_config
from kedro_mlflow_starter.config.credentials import export_credentials
from kedro_mlflow_starter.config.run_names import random_run_name
from kedro_mlflow_starter.errors import PipelineModelArtifactMissingError
from kedro_mlflow_starter.framework.catalog_checks import check_catalog_before_run
from kedro_mlflow_starter.framework.console import log_run_pipeline_model
from kedro_mlflow_starter.models.snapshots import plan_environment, snapshot_plan
from kedro_mlflow_starter.pipeline import PipelineML
from kedro_mlflow_starter.pipeline.pipeline_ml import warn_if_model_not_logged
from kedro_mlflow_starter.tracking.current import PublishedEnvironment, register_request_header_provider
from kedro_mlflow_starter.tracking.failures import is_transient, outage_policy
from kedro_mlflow_starter.tracking.lineage_recorder import LineageRecorder
from kedro_mlflow_starter.tracking.overwritten_files import OverwriteWatch
from kedro_mlflow_starter.tracking.params import pipeline_parameters, prepare_params, read_quietly
from kedro_mlflow_starter.tracking.retries import shared_run_environment
from kedro_mlflow_starter.tracking.run import TrackedRun, default_run_name
from kedro_mlflow_starter.tracking.store import file_store_env
from kedro_mlflow_starter.tracking.switches import check_switches, start_run_switches
from kedro_mlflow_starter.tracking.user_run import remember_user_run_store

if TYPE_CHECKING:  # pragma: no cover
    from kedro.framework.context import KedroContext
    from kedro.io import DataCatalog
    from kedro.pipeline import Pipeline

logger = logging.getLogger(__name__)

RESOLVER = "km.random_name"


class SessionTracking:
    """What the hook keeps between Kedro's events: the session's config and store, and whether
    the pipeline that runs is untracked (restored, and said, when it ends)."""

    def __init__(self) -> None:
        self.config: MlflowConfig | None = None
        self._store = PublishedEnvironment()  # the store of mlflow.yml, for the whole session
        self._untracked = PublishedEnvironment()
        self._untracked_reason: str | None = None

    def context_created(self, context: KedroContext) -> MlflowConfig:
        """Read mlflow.yml; from now on every dataset and fluent call of the session talks to its
        store, tracked or not (untracked pipelines, notebooks after ``load_context()``)."""
        self._untracked_reason = None
        if not OmegaConf.has_resolver(RESOLVER):
            OmegaConf.register_new_resolver(RESOLVER, random_run_name, use_cache=False)
        ours = logging.getLogger("kedro_mlflow_starter")  # Kedro shows only its own logger at INFO
        if ours.level == logging.NOTSET:
            ours.setLevel(logging.INFO)
        config = self.config = load_mlflow_config(context.config_loader, Path(context.project_path),
                                                       kedro_project.PACKAGE_NAME)
        if config.server.credentials:
            export_credentials(context.config_loader, config.server.credentials)
        remember_user_run_store()  # where the user's active run was opened, before the store changes
        self._store.restore()  # the previous session's store, if any
        uri = config.tracking_uri()
        self._store.set(file_store_env(uri))
        self._store.store(uri, config.registry_uri())
        register_request_header_provider(config.server.request_header_provider, context)
        return config

    def pipeline_started(self, run_params: dict[str, Any], pipeline: Pipeline,
                         catalog: DataCatalog) -> TrackedRun | None:
        """The run this pipeline logs into, opened and published to every worker; None when untracked. A bad
        catalog entry or parameter fails here, before the store is touched: no stray run is left behind."""
        config = self.config
        if config is None:  # the hook was registered after the context was created
            return None
        names = sorted(run_params.get("pipeline_names") or ["__default__"])
        disabled = set(config.tracking.disable_tracking.pipelines)
        if disabled and all(name in disabled for name in names):
            return self._run_untracked(f"tracking is disabled for pipeline(s) {', '.join(names)} in mlflow.yml")
        check_catalog_before_run(pipeline, catalog)
        check_switches(config.tracking)
        prepared = prepare_params(pipeline_parameters(pipeline.inputs(), read_quietly(catalog)), config.tracking.params)
        run = TrackedRun.open(config, run_params, prepared, partial(default_run_name, config, names),
                              nodes=sorted(node.name for node in pipeline.nodes))
        if run is None:  # unreachable store and `on_unreachable: run_untracked`
            return self._run_untracked("the tracking store is unreachable and server.on_unreachable is "
                                       "run_untracked", warn_at_end=True)
        run.publish({**_model_artifacts_to_copy(pipeline, catalog, run_params, one_task=run.is_task),
                     **shared_run_environment(run.shared)})
        start_run_switches(config.tracking, run.run_id, run_params.get("runner"))  # active run, autolog, system metrics
        if not run.is_task:  # one task of a group run logs no model: `kedro mlflow run close` does
            warn_if_model_not_logged(pipeline)  # the user's own filter dropped the model: say it once
            if isinstance(pipeline, PipelineML):
                run.log_model = partial(_log_pipeline_model, pipeline, catalog, names[0], run_params)
        run.watch = OverwriteWatch(pipeline, catalog)
        if any(config.tracking.lineage.model_dump().values()):
            run.lineage = LineageRecorder(config.tracking.lineage, pipeline, catalog, run_params,
                                          project_path=config.project_path,
                                          secret_patterns=config.tracking.params.secret_patterns,
                                          logs_pipeline_model=isinstance(pipeline, PipelineML))
        return run

    def untracked_pipeline_ended(self, succeeded: bool) -> None:
        if succeeded and self._untracked_reason:
            logger.warning("MLflow: the pipeline ran UNTRACKED (%s); nothing of it is in MLflow.",
                           self._untracked_reason)
        self._untracked.restore()

    def _run_untracked(self, reason: str, warn_at_end: bool = False) -> None:
        logger.info("MLflow: this run is not tracked: %s.", reason)
        if warn_at_end:
            self._untracked_reason = reason
        self._untracked.untracked()


def _log_pipeline_model(pipeline: PipelineML, catalog: DataCatalog, pipeline_name: str, run_params: dict[str, Any],
                        run: TrackedRun) -> str | None:
    """Log the pipeline model from the run's own copies of its artifacts; an outage (or a copy an
    outage stopped) is recorded and kept for `kedro mlflow run replay`."""

    def lost(error: BaseException) -> bool:
        return is_transient(error) or (isinstance(error, PipelineModelArtifactMissingError) and bool(run.failures()))

    replay = {"kind": "pipeline_model", "pipeline": pipeline_name, "env": run_params.get("env"),
              "runtime_params": run_params.get("runtime_params") or {}}
    with outage_policy(f"the pipeline model of pipeline '{pipeline_name}'", None, replay, transient=lost):
        return log_run_pipeline_model(pipeline, catalog, run.run_id)
    return None


def _model_artifacts_to_copy(pipeline: Pipeline, catalog: DataCatalog, run_params: dict[str, Any],
                             one_task: bool) -> dict[str, str | None]:
    """The environment that makes every worker copy the pipeline model's artifacts into the run
    as they are saved: those of the pipeline that runs, and for one task of a group run, those
    of the registered pipelines it is a slice of (``close`` builds the model)."""
    models = [pipeline] if isinstance(pipeline, PipelineML) else []
    if one_task:
        models += [registered for name in run_params.get("pipeline_names") or ["__default__"]
                   if isinstance(registered := kedro_project.pipelines.get(name), PipelineML)]
    return plan_environment(snapshot_plan(pipeline, catalog, models) if models else {})
