"""The pipeline model logged at the end of a ``kedro run`` and of ``run close``, MLflow's registration
prints turned into log lines (tracking/registration_prints.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kedro_mlflow_starter.tracking.registration_prints import mlflow_prints_logged

if TYPE_CHECKING:  # pragma: no cover
    from kedro.io import DataCatalog

    from kedro_mlflow_starter.pipeline import PipelineML


def log_run_pipeline_model(pipeline: PipelineML, catalog: DataCatalog, run_id: str) -> str | None:
    """Log the pipeline model of run ``run_id`` from the artifacts its nodes produced, MLflow's
    registration prints turned into log lines (the end of a ``kedro run`` and of ``run close``)."""
    from kedro_mlflow_starter.models.logging import log_pipeline_model  # imports mlflow

    with mlflow_prints_logged():
        return log_pipeline_model(pipeline, catalog, run_id, produced=pipeline.all_outputs())
