"""Start and finish the tracked part of a ``kedro run`` (imports ``mlflow``)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from kedro_mlflow_starter.config.mlflow_config import MlflowConfig
from kedro_mlflow_starter.config.uris import redact_uri
from kedro_mlflow_starter.logging_failures import is_transient
from kedro_mlflow_starter.tracking.mlflow_run import (
    OpenRun,
    end_run,
    ensure_experiment,
    log_params_and_tags,
    make_client,
    open_run,
)
from kedro_mlflow_starter.tracking.params import PreparedParams
from kedro_mlflow_starter.tracking.run_tags import run_tags
from kedro_mlflow_starter.tracking.store import TrackingStoreUnreachableError, check_reachable

logger = logging.getLogger("kedro_mlflow_starter")


def start_tracking(
    config: MlflowConfig,
    run_params: dict[str, Any],
    prepared: PreparedParams,
    pipeline_names: Sequence[str],
) -> tuple[Any, OpenRun] | None:
    """Open the run and log params and tags; None when the store is unreachable and allowed."""
    uri = config.tracking_uri()
    try:
        check_reachable(uri, config.server.connect_timeout)
        client = make_client(uri, config.registry_uri())
        experiment_id = ensure_experiment(client, config, uri)
        tags = run_tags(run_params, config.project_path, config.package_name, config.tracking.params.secret_patterns)
        run_name = config.tracking.run.name or "+".join(pipeline_names)
        run = open_run(client, config, experiment_id, run_name, tags)
    except Exception as error:
        if isinstance(error, TrackingStoreUnreachableError):
            unreachable = error
        elif is_transient(error):
            unreachable = TrackingStoreUnreachableError(uri, f"{type(error).__name__}: {error}")
        else:
            raise
        if config.server.on_unreachable == "run_untracked":
            logger.warning(unreachable.untracked_notice())
            return None
        raise unreachable from None
    if not run.owned and _joins_orchestrated_run(client, run, prepared, run_params):
        pass  # an orchestrator task: only what the run lacks was logged
    else:
        extra_tags = dict(prepared.tags)
        if not run.owned or config.tracking.run.id:
            extra_tags.update(tags)
        log_params_and_tags(client, run.run_id, prepared.params, extra_tags)
    logger.info("MLflow run '%s' (%s) started in experiment '%s' at %s.", run.run_name, run.run_id,
                run.experiment_name, redact_uri(uri))
    return client, run


def finish_tracking(
    client: Any, config: MlflowConfig, run: OpenRun, status: str, model_uri: str | None, elapsed: float
) -> None:
    """End the run (unless an orchestrator owns it) and tell the user where it is."""
    if run.owned:
        end_run(client, run.run_id, status)
    elif run.task is not None:
        from kedro_mlflow_starter.tracking.orchestrated import record_task_outcome

        record_task_outcome(client, run.run_id, run.task, status, run.task_error)
    uri = redact_uri(config.tracking_uri())
    if uri.startswith(("http://", "https://")):
        where = f"{uri.rstrip('/')}/#/experiments/{run.experiment_id}/runs/{run.run_id}"
    else:
        where = "run `kedro mlflow ui` to open it"
    model = f", pipeline model {model_uri}" if model_uri else ""
    state = status if run.owned else f"{status} (left open for its owner)"
    logger.info("MLflow run '%s' (%s) %s in experiment '%s'%s; %s.", run.run_name, run.run_id, state,
                run.experiment_name, model, where)


def _joins_orchestrated_run(client: Any, run: OpenRun, prepared: PreparedParams, run_params: dict[str, Any]) -> bool:
    """Join a run opened by `kedro mlflow run open` as one task of it (see tracking.orchestrated)."""
    from kedro_mlflow_starter.tracking import orchestrated

    if not orchestrated.is_orchestrated(client.get_run(run.run_id).data.tags):
        return False
    run.task = orchestrated.task_label(run_params)
    orchestrated.join(client, run.run_id, prepared.params, prepared.tags)
    return True
