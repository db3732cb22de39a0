"""The ``mlflow.yml`` configuration: its model and how it is read from a Kedro project."""

from kedro_mlflow_starter.config.loader import MlflowConfigError, load_mlflow_config
from kedro_mlflow_starter.config.mlflow_config import MlflowConfig

__all__ = ["MlflowConfig", "MlflowConfigError", "load_mlflow_config"]
