"""``MlflowHook``: one honest MLflow run per ``kedro run``.

Registered through the ``kedro.hooks`` entry point (opt out with
``DISABLE_HOOKS_FOR_PLUGINS = ("kedro-mlflow-starter",)`` in settings.py). Loading this
module and creating the context never imports ``mlflow``; the first tracking call does.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl

from kedro_mlflow_starter.config import MlflowConfig, load_mlflow_config
from kedro_mlflow_starter.config.errors import KedroMlflowUserError
from kedro_mlflow_starter.logging_failures import describe_error, is_transient, read_failures
from kedro_mlflow_starter.run_context import ENV_FAILURE_LOG, ENV_RUN_ID, ENV_TRACKING_DISABLED
from kedro_mlflow_starter.tracking.credentials import export_credentials
from kedro_mlflow_starter.tracking.names import random_run_name
from kedro_mlflow_starter.tracking.params import pipeline_parameters, prepare_params
from kedro_mlflow_starter.tracking.status_guard import StatusGuard

logger = logging.getLogger(__name__)

RESOLVER = "km.random_name"


class TrackingIncompleteError(KedroMlflowUserError, RuntimeError):
    """The pipeline ran, but some of what it should have logged did not reach MLflow.

    The message lists each item (params, metrics, artifacts, models, the run's status) with
    the local file it came from, so the user can re-log it once the server is back.
    """


@dataclass
class _SessionState:
    """What one Kedro session's hook knows; reset at every ``after_context_created``."""

    config: MlflowConfig | None = None
    context: Any = None
    client: Any = None
    run: Any = None  # tracking.mlflow_run.OpenRun
    tracked: bool = False
    guard: StatusGuard | None = None
    saved_env: dict[str, str | None] = field(default_factory=dict)
    failure_log: str | None = None
    started: float = 0.0
    untracked_reason: str | None = None


class MlflowHook:
    """Tracks every ``kedro run`` in MLflow as configured by ``conf/*/mlflow.yml``."""

    def __init__(self) -> None:
        self._state = _SessionState()

    @property
    def config(self) -> MlflowConfig | None:
        return self._state.config

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        self._abandon_open_run()
        self._state = _SessionState(context=context)
        _register_resolver()
        _show_our_messages()
        config = load_mlflow_config(
            context.config_loader, Path(context.project_path), _package_name()
        )
        self._state.config = config
        context.mlflow = config
        if config.server.credentials:
            export_credentials(context.config_loader, config.server.credentials)

    @hook_impl
    def after_catalog_created(self, catalog: Any) -> None:
        from kedro_mlflow_starter.io.catalog_setup import bind_mlflow_datasets

        bind_mlflow_datasets(catalog)

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        state = self._state
        config = state.config
        if config is None:  # the hook was registered after the context was created
            return
        pipeline_names = sorted(run_params.get("pipeline_names") or ["__default__"])
        disabled = set(config.tracking.disable_tracking.pipelines)
        if disabled and all(name in disabled for name in pipeline_names):
            self._run_untracked(f"tracking is disabled for pipeline(s) {', '.join(pipeline_names)} in mlflow.yml")
            return
        # Validate the catalog and parameters before touching the store: a bad entry or value
        # fails before any node runs and leaves no stray run behind.
        from kedro_mlflow_starter.io.catalog_setup import bind_mlflow_datasets
        from kedro_mlflow_starter.pipeline import PipelineML

        bind_mlflow_datasets(catalog, names=pipeline.datasets())  # dataset-factory entries too
        _materialise_datasets(pipeline, catalog)
        if isinstance(pipeline, PipelineML):
            from kedro_mlflow_starter.pipeline.model_logging import check_pipeline_ml_catalog

            check_pipeline_ml_catalog(pipeline, catalog)
        values = pipeline_parameters(pipeline.inputs(), catalog.load)
        prepared = prepare_params(values, config.tracking.params)
        for original, key in prepared.renamed.items():
            logger.warning("MLflow parameter '%s' is logged as '%s' (MLflow rejects some characters).", original, key)
        from kedro_mlflow_starter.tracking.session_run import start_tracking
        from kedro_mlflow_starter.tracking.store import file_store_env, http_retry_env

        self._set_env(http_retry_env())
        self._set_env(file_store_env(config.tracking_uri()))
        opened = start_tracking(config, run_params, prepared, pipeline_names)
        if opened is None:  # unreachable store and `on_unreachable: run_untracked`
            self._run_untracked("the tracking store is unreachable and server.on_unreachable is run_untracked",
                                warn_at_end=True)
            return
        state.client, state.run = opened
        state.tracked = True
        state.started = time.monotonic()
        # Only named here: the first recorded failure creates the file, so a run killed with
        # kill -9 (nothing can clean up then) leaves no empty ledger in the temp folder.
        state.failure_log = os.path.join(tempfile.gettempdir(), f"kedro-mlflow-failures-{uuid.uuid4().hex}.jsonl")
        self._set_env(
            {
                "MLFLOW_TRACKING_URI": config.tracking_uri(),
                "MLFLOW_REGISTRY_URI": config.registry_uri(),
                ENV_RUN_ID: state.run.run_id,
                "MLFLOW_RUN_ID": state.run.run_id,
                ENV_TRACKING_DISABLED: None,
                ENV_FAILURE_LOG: state.failure_log,
            }
        )
        if config.tracking.disable_tracking.disable_autologging and "mlflow" in __import__("sys").modules:
            import mlflow

            mlflow.autolog(disable=True)
        state.guard = StatusGuard(self._close_run)
        state.guard.arm()

    @hook_impl
    def after_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        state = self._state
        if not state.tracked:
            if state.untracked_reason:
                logger.warning("MLflow: the pipeline ran UNTRACKED (%s); nothing of it is in MLflow.",
                               state.untracked_reason)
            self._restore_env()
            return
        model_uri = None
        try:
            from kedro_mlflow_starter.pipeline import PipelineML

            if isinstance(pipeline, PipelineML):
                model_uri = self._log_pipeline_model(pipeline, catalog, run_params)
            failures = read_failures(state.failure_log) if state.failure_log else []
        except BaseException:
            self._close_run("FAILED")
            raise
        status = "FAILED" if failures else "FINISHED"
        run_id = state.run.run_id
        unrecorded = self._close_run(status, model_uri=model_uri)
        if unrecorded:
            failures.append({"what": f"the run's final status {status}", "local_path": None, "error": unrecorded})
        if failures:
            raise TrackingIncompleteError(_describe_failures(failures, run_id, status, status_recorded=not unrecorded))

    @hook_impl
    def on_pipeline_error(self, error: Exception, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        if self._state.tracked:
            self._close_run("FAILED")
        else:
            self._restore_env()

    # -- internals -------------------------------------------------------------------------

    def _run_untracked(self, reason: str, warn_at_end: bool = False) -> None:
        logger.info("MLflow: this run is not tracked: %s.", reason)
        if warn_at_end:
            self._state.untracked_reason = reason
        self._set_env({ENV_TRACKING_DISABLED: "1", ENV_RUN_ID: None})

    def _log_pipeline_model(self, pipeline: Any, catalog: Any, run_params: dict[str, Any]) -> str | None:
        from kedro_mlflow_starter.logging_failures import record_failure
        from kedro_mlflow_starter.pipeline.model_logging import log_pipeline_model

        run_id = self._state.run.run_id
        try:
            model_id = log_pipeline_model(pipeline, catalog, run_id)
        except Exception as error:
            if not is_transient(error):
                raise
            names = sorted(run_params.get("pipeline_names") or ["__default__"])
            record_failure(
                f"the pipeline model (re-log it: kedro mlflow modelify --pipeline {names[0]} --run-id {run_id})",
                None,
                error,
            )
            return None
        return model_id if str(model_id).startswith("models:/") else f"models:/{model_id}"

    def _close_run(self, status: str, model_uri: str | None = None) -> str | None:
        """End the run with ``status`` (once) and restore the environment.

        Returns None when the status was recorded, else why not (the tracking server went
        away): the run then stays RUNNING in the store, and the caller says so.
        """
        state = self._state
        if not state.tracked or state.run is None:
            return None
        state.tracked = False
        if state.guard is not None:
            state.guard.disarm()
        from kedro_mlflow_starter.tracking.session_run import finish_tracking

        try:
            finish_tracking(state.client, state.config, state.run, status, model_uri, time.monotonic() - state.started)
        except Exception as error:
            if not is_transient(error):
                raise
            problem = describe_error(error)
            logger.warning(
                "MLflow: could not mark run %s %s (%s). It shows as RUNNING until you run "
                "`kedro mlflow stale-runs --mark-killed` once the tracking server is back.",
                state.run.run_id, status, problem,
            )
            return problem
        finally:
            self._restore_env()
            if state.failure_log:
                Path(state.failure_log).unlink(missing_ok=True)
        return None

    def _abandon_open_run(self) -> None:
        """A previous session in this process was interrupted (e.g. Ctrl-C in a notebook)."""
        if self._state.tracked:
            self._close_run("KILLED")

    def _set_env(self, values: dict[str, str | None]) -> None:
        for key, value in values.items():
            self._state.saved_env.setdefault(key, os.environ.get(key))
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    def _restore_env(self) -> None:
        for key, value in self._state.saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._state.saved_env = {}


def _describe_failures(failures: list[dict[str, Any]], run_id: str, status: str, status_recorded: bool) -> str:
    lines = [f"The pipeline ran, but {len(failures)} item(s) could not be logged to MLflow run {run_id}:"]
    for entry in failures:
        where = f" (local copy: {entry['local_path']})" if entry.get("local_path") else ""
        lines.append(f"  - {entry['what']}{where}: {entry['error']}")
    lines.append("Your pipeline's outputs are on disk (nothing was deleted); re-log the items above once the "
                 "tracking server is back.")
    if status_recorded:
        lines.append(f"The run is marked {status}.")
    else:
        lines.append("The run could not be closed and shows as RUNNING: mark it with "
                     "`kedro mlflow stale-runs --mark-killed` once the server is back.")
    return "\n".join(lines)


def _materialise_datasets(pipeline: Any, catalog: Any) -> None:
    """Build every catalog entry the pipeline uses (the runner would, a moment later), so a
    misspelt ``type:`` or a bad argument is reported before the MLflow run is opened."""
    get = getattr(catalog, "get", None)
    if get is None:
        return
    for name in sorted(pipeline.datasets()):
        if name == "parameters" or name.startswith("params:"):
            continue
        if name in catalog:
            get(name)


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
