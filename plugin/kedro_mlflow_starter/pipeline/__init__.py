"""Pipeline as a model: ``pipeline_ml_factory`` binds training and inference pipelines (never imports mlflow)."""

from kedro_mlflow_starter.errors import KedroMlflowPipelineMLError
from kedro_mlflow_starter.pipeline.pipeline_ml import PipelineML, pipeline_ml_factory

__all__ = ["KedroMlflowPipelineMLError", "PipelineML", "pipeline_ml_factory"]
