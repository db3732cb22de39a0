"""The ``mlflow.yml`` configuration: its model and how it is read from a Kedro project."""

from kedro_mlflow_starter.config.loader import load_mlflow_config
from kedro_mlflow_starter.config.mlflow_config import MlflowConfig
from kedro_mlflow_starter.errors import MlflowConfigError

__all__ = ["MlflowConfig", "MlflowConfigError", "load_mlflow_config"]
