"""The ``kedro.starters`` entry point: ``kedro new --starter=mlflow-iris`` (a local folder: works offline)."""

from __future__ import annotations

from kedro.framework.cli.starters import KedroStarterSpec

from kedro_mlflow_starter.templates import starter_root

ALIAS = "mlflow-iris"

starters = [KedroStarterSpec(alias=ALIAS, template_path=str(starter_root()))]
