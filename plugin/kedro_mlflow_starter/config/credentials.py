"""Export the credentials.yml entry named by ``server.credentials`` as the environment variables MLflow reads."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from kedro.config import MissingConfigException

from kedro_mlflow_starter.errors import MlflowConfigError

if TYPE_CHECKING:
    from kedro.config import AbstractConfigLoader


def export_credentials(config_loader: AbstractConfigLoader, name: str) -> None:
    """Set each key of credentials entry ``name`` as an environment variable."""
    try:
        credentials = config_loader["credentials"]
    except (KeyError, MissingConfigException):
        credentials = {}
    entry = (credentials or {}).get(name)
    if not isinstance(entry, dict):
        known = ", ".join(sorted(credentials or {})) or "none"
        raise MlflowConfigError(
            f"mlflow.yml: server.credentials = '{name}' names no entry of conf/*/credentials.yml "
            f"(entries found: {known}). Add a '{name}:' mapping with e.g. MLFLOW_TRACKING_USERNAME and "
            "MLFLOW_TRACKING_PASSWORD to conf/local/credentials.yml, or set server.credentials: null.")
    for key, value in entry.items():
        if value is not None:
            os.environ[str(key)] = str(value)
