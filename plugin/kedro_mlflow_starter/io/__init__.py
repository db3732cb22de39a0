"""The MLflow datasets that catalog ``type:`` entries name.

Classes are imported on first access, and none of them imports ``mlflow`` before it
saves or loads, so creating a catalog stays as fast as without the plugin.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "MlflowArtifactDataset": "kedro_mlflow_starter.io.artifact_dataset",
    "MlflowModelTrackingDataset": "kedro_mlflow_starter.io.model_tracking_dataset",
    "MlflowModelLocalFileSystemDataset": "kedro_mlflow_starter.io.model_local_dataset",
    "MlflowModelRegistryDataset": "kedro_mlflow_starter.io.model_registry_dataset",
    "MlflowMetricDataset": "kedro_mlflow_starter.io.metrics",
    "MlflowMetricHistoryDataset": "kedro_mlflow_starter.io.metrics",
    "MlflowMetricsHistoryDataset": "kedro_mlflow_starter.io.metrics",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'kedro_mlflow_starter.io' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
