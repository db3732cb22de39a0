"""Pipeline models: ``KedroPipelineModel``, its on-disk layout, requirements and logging.

``contract`` (what makes a pipeline a model) is mlflow-free and imported by ``pipeline/``;
everything else imports ``mlflow`` and is loaded on first use: ``KedroPipelineModel`` is
resolved lazily so that importing this package costs nothing on Kedro's start-up path.
"""

from __future__ import annotations

from typing import Any

__all__ = ["KedroPipelineModel"]


def __getattr__(name: str) -> Any:
    if name == "KedroPipelineModel":
        from kedro_mlflow_starter.models.kedro_pipeline_model import KedroPipelineModel

        return KedroPipelineModel
    raise AttributeError(f"module 'kedro_mlflow_starter.models' has no attribute {name!r}")
