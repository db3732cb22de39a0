"""A run's LoggedModels still PENDING when the run ends are marked FAILED: their upload was cut short
(a process killed mid-save, a ParallelRunner worker stopped, an outage), so they will never be READY,
and MLflow would list them as models that might still become usable."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from kedro_mlflow_starter.tracking.failures import call_with_retry

if TYPE_CHECKING:  # pragma: no cover
    from mlflow import MlflowClient

logger = logging.getLogger("kedro_mlflow_starter")


def fail_pending_models(client: MlflowClient, experiment_id: str, run_id: str) -> None:
    """Mark FAILED every model of run ``run_id`` that is still PENDING. Called once no process logs
    into the run any more (it ends, or is found stale)."""
    from mlflow.entities import LoggedModelStatus

    models = call_with_retry(lambda: client.search_logged_models(
        experiment_ids=[experiment_id], filter_string=f"source_run_id = '{run_id}'", max_results=1000))
    pending = [model for model in models if model.status == LoggedModelStatus.PENDING]
    for model in pending:
        call_with_retry(lambda model=model: client.finalize_logged_model(model.model_id, LoggedModelStatus.FAILED))
        logger.warning("MLflow: model '%s' (%s) of run %s was never fully logged; it is marked FAILED.",
                       model.name, model.model_id, run_id)
