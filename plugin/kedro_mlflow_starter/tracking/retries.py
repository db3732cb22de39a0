"""What a retried task (or a run resumed by ``tracking.run.id``) must not log twice: one model per
dataset per run and no metric point twice. The run says it is shared through ``KEDRO_MLFLOW_SHARED_RUN``,
so datasets see it in every worker; a fresh run pays nothing."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from mlflow import MlflowClient
    from mlflow.entities import Metric

ENV_SHARED_RUN = "KEDRO_MLFLOW_SHARED_RUN"

logger = logging.getLogger("kedro_mlflow_starter")


def shared_run_environment(shared: bool) -> dict[str, str | None]:
    """The environment telling datasets that the run may hold an earlier attempt's records."""
    return {ENV_SHARED_RUN: "1" if shared else None}


def is_shared_run() -> bool:
    return os.environ.get(ENV_SHARED_RUN) == "1"


def points_not_logged(client: MlflowClient, run_id: str, metrics: Sequence[Metric]) -> list[Metric]:
    """``metrics`` less the points (same key, step and value) the run already holds."""
    if not is_shared_run() or not metrics:
        return list(metrics)
    held = {
        (point.key, point.step, point.value)
        for key in {metric.key for metric in metrics}
        for point in client.get_metric_history(run_id, key)
    }
    return [metric for metric in metrics if (metric.key, metric.step, metric.value) not in held]


def drop_earlier_models(client: MlflowClient, run_id: str, experiment_id: str, name: str, kept_model_id: str) -> None:
    """Delete the models named ``name`` that an earlier attempt logged in run ``run_id`` (and
    the registry versions made from them): the run keeps the one ``kept_model_id``."""
    if not is_shared_run():
        return
    earlier = [
        model
        for model in client.search_logged_models(
            experiment_ids=[experiment_id], filter_string=f"source_run_id = '{run_id}' AND name = '{name}'"
        )
        if model.model_id != kept_model_id
    ]
    if not earlier:
        return
    ids = {model.model_id for model in earlier}
    for version in client.search_model_versions(f"run_id = '{run_id}'"):
        if getattr(version, "model_id", None) in ids:
            client.delete_model_version(version.name, version.version)
    for model_id in sorted(ids):
        client.delete_logged_model(model_id)
    logger.info("MLflow: model '%s' of run %s replaces the one an earlier attempt logged.", name, run_id)
