"""MLflow's switches from ``mlflow.yml``, on while a run is open: ``tracking.autolog`` (in every
worker process too, through ``KEDRO_MLFLOW_AUTOLOG``) and ``tracking.system_metrics``."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from typing import TYPE_CHECKING, Any

from kedro_mlflow_starter import compat
from kedro_mlflow_starter.config.mlflow_config import TrackingConfig
from kedro_mlflow_starter.errors import MlflowConfigError
from kedro_mlflow_starter.tracking.current import PublishedEnvironment, enter_pipeline_run, store_uris

if TYPE_CHECKING:  # pragma: no cover
    from kedro.runner import AbstractRunner

ENV_AUTOLOG = "KEDRO_MLFLOW_AUTOLOG"

logger = logging.getLogger("kedro_mlflow_starter")

_state: dict[str, Any] = {}  # what this process started: environment, monitor, autolog arguments


def check_switches(config: TrackingConfig) -> None:
    """Fail before any node runs when a switch cannot work here (a missing package)."""
    if config.system_metrics.enabled and importlib.util.find_spec("psutil") is None:
        raise MlflowConfigError(
            "tracking.system_metrics.enabled is true in conf/*/mlflow.yml, but MLflow's system metrics "
            "monitor needs the psutil package, which is not installed. Install it (pip install psutil, or "
            "pip install 'kedro-mlflow-starter[system-metrics]'), or set tracking.system_metrics.enabled: false."
        )


def start_run_switches(config: TrackingConfig, run_id: str, runner: AbstractRunner | str | None = None) -> None:
    """Make the run ``mlflow.active_run()`` for the project's hooks, and turn on what
    ``mlflow.yml`` asks for (no more import when the switches are off)."""
    enter_pipeline_run()
    if not (config.autolog.enabled or config.system_metrics.enabled):
        return
    if config.autolog.enabled and "ThreadRunner" in str(runner or ""):
        logger.warning(
            "MLflow: tracking.autolog under ThreadRunner: MLflow autologs one fit at a time per process, so of "
            "two fits running at the same moment in two threads only the first is autologged. Run with "
            "SequentialRunner or ParallelRunner (one process per node) to autolog every fit."
        )
    stop_run_switches()  # a previous run of this process that was not closed
    check_switches(config)
    environment = PublishedEnvironment()
    _state["environment"] = environment
    if config.autolog.enabled:
        kwargs = config.autolog.autolog_kwargs()
        environment.set({ENV_AUTOLOG: json.dumps(kwargs)})
        autolog_in_this_process()
    if config.system_metrics.enabled:
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        settings = config.system_metrics
        try:
            monitor = SystemMetricsMonitor(run_id, sampling_interval=settings.sampling_interval,
                                           samples_before_logging=settings.samples_before_logging,
                                           tracking_uri=store_uris()[0])
            monitor.start()
        except Exception as error:  # noqa: BLE001 - the pipeline runs without the figures, and says so
            logger.warning("MLflow: system metrics are not logged for this run: %s", error)
            return
        _state["monitor"] = monitor


def autolog_in_this_process() -> None:
    """Turn autologging on in this process (a worker's first node) if the run asks for it."""
    wanted = os.environ.get(ENV_AUTOLOG)
    if not wanted or _state.get("autolog") == wanted:
        return
    import mlflow

    if not _state.get("renews_pools_in_forks"):  # once per process; forked children inherit it
        os.register_at_fork(after_in_child=compat.renew_autologging_pools)
        _state["renews_pools_in_forks"] = True
    mlflow.autolog(**json.loads(wanted), exclusive=False)
    _state["autolog"] = wanted


def stop_run_switches() -> None:
    """Log the last system metrics, turn autologging off, restore the environment."""
    monitor = _state.pop("monitor", None)
    if monitor is not None:  # logs the samples of the last, partial window too
        monitor.finish()
        try:
            if any(each.metrics for each in monitor.monitors):
                monitor.publish_metrics(monitor.aggregate_metrics())
                monitor.mlflow_logger.flush()
        except Exception as error:  # noqa: BLE001 - a figure lost is not worth failing the run
            logger.debug("MLflow: the last system metrics were not logged: %s", error)
    if _state.pop("autolog", None) is not None:
        import mlflow

        mlflow.autolog(disable=True)
    environment = _state.pop("environment", None)
    if environment is not None:
        environment.restore()
