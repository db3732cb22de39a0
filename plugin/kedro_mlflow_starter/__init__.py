"""kedro-mlflow-starter: MLflow tracking and pipeline-as-a-model for Kedro projects (public names load lazily)."""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "MlflowHook": "kedro_mlflow_starter.framework.hooks",
    "pipeline_ml_factory": "kedro_mlflow_starter.pipeline",
    "PipelineML": "kedro_mlflow_starter.pipeline",
    "KedroPipelineModel": "kedro_mlflow_starter.models",
}

__all__ = ["KedroPipelineModel", "MlflowHook", "PipelineML", "__version__", "pipeline_ml_factory"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'kedro_mlflow_starter' has no attribute {name!r}")
