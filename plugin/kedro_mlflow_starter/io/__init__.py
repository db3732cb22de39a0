"""The MLflow datasets that catalog ``type:`` entries name, imported on first access (none of
them imports ``mlflow`` before it saves or loads)."""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "MlflowArtifactDataset": "artifact_dataset",
    "MlflowModelTrackingDataset": "model_tracking_dataset",
    "MlflowModelLocalFileSystemDataset": "model_local_dataset",
    "MlflowModelRegistryDataset": "model_registry_dataset",
    "MlflowMetricDataset": "metric_dataset",
    "MlflowMetricHistoryDataset": "metric_history_dataset",
    "MlflowMetricsHistoryDataset": "metrics_history_dataset",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'kedro_mlflow_starter.io' has no attribute {name!r}")
    value = globals()[name] = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
