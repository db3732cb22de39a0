"""Pipeline models: ``KedroPipelineModel`` (imports mlflow, so resolved lazily), its layout, requirements, logging."""

from __future__ import annotations

from typing import Any

__all__ = ["KedroPipelineModel"]


def __getattr__(name: str) -> Any:
    if name == "KedroPipelineModel":
        from kedro_mlflow_starter.models.kedro_pipeline_model import KedroPipelineModel

        return KedroPipelineModel
    raise AttributeError(f"module 'kedro_mlflow_starter.models' has no attribute {name!r}")
