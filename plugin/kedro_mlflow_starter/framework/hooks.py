"""``MlflowHook``: one honest MLflow run per ``kedro run``.

Registered through the ``kedro.hooks`` entry point (opt out with
``DISABLE_HOOKS_FOR_PLUGINS = ("kedro-mlflow-starter",)`` in settings.py). Loading this
module and creating the context never imports ``mlflow``; the first tracking call does.
"""

from __future__ import annotations

import logging
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
        from kedro_mlflow_starter.tracking.params import pipeline_parameters, prepare_params
        from kedro_mlflow_starter.tracking.run import TrackedRun, default_run_name

        check_catalog_before_run(pipeline, catalog)
        prepared = prepare_params(pipeline_parameters(pipeline.inputs(), catalog.load), config.tracking.params)
        run = TrackedRun.open(config, run_params, prepared, default_run_name(config, pipeline_names))
        if run is None:  # unreachable store and `on_unreachable: run_untracked`
            self._run_untracked("the tracking store is unreachable and server.on_unreachable is run_untracked",
                                warn_at_end=True)
            return
        run.publish()
        self._run = run
        from kedro_mlflow_starter.pipeline.pipeline_ml import warn_if_model_not_logged

        warn_if_model_not_logged(pipeline)  # the user's own filter dropped the model: say it once

    @hook_impl
    def after_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        run, self._run = self._run, None
        if run is None:
            if self._untracked_reason:
                logger.warning("MLflow: the pipeline ran UNTRACKED (%s); nothing of it is in MLflow.",
                               self._untracked_reason)
            self._untracked.restore()
            return
        try:
            model_uri = self._log_pipeline_model(run, pipeline, catalog, run_params)
        except BaseException:
            run.close("FAILED")
            raise
        run.finish(model_uri)

    @hook_impl
    def on_pipeline_error(self, error: Exception, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        run, self._run = self._run, None
        if run is not None:
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

        if not isinstance(pipeline, PipelineML):
            return None
        from kedro_mlflow_starter.models.logging import log_pipeline_model
        from kedro_mlflow_starter.tracking.failures import is_transient, record_failure

        try:
            return log_pipeline_model(pipeline, catalog, run.run_id)
        except Exception as error:
            if not is_transient(error):
                raise
            names = sorted(run_params.get("pipeline_names") or ["__default__"])
            record_failure(
                f"the pipeline model (re-log it: kedro mlflow modelify --pipeline {names[0]} --run-id {run.run_id})",
                None,
                error,
            )
            return None


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
