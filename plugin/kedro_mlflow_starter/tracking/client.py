"""``MlflowClient`` instances: one per process and store, created safely on a fresh SQLite file."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from kedro_mlflow_starter.tracking.failures import call_with_retry
from kedro_mlflow_starter.tracking.store import store_creation_lock

if TYPE_CHECKING:  # pragma: no cover
    from mlflow import MlflowClient

_clients: dict[tuple[int, str | None, str | None], MlflowClient] = {}

# MLflow narrates routine steps at INFO on its own handler ("Creating initial MLflow database
# tables...", "Validating input example against model signature"); a kedro run prints its own
# summary instead. Their warnings still show, and a logger the project configured is left alone.
_CHATTY_MLFLOW_LOGGERS = ("mlflow.store.db.utils", "mlflow.pyfunc", "mlflow.models.model")


def quiet_mlflow_info() -> None:
    for name in _CHATTY_MLFLOW_LOGGERS:
        chatty = logging.getLogger(name)
        if chatty.level == logging.NOTSET:
            chatty.setLevel(logging.WARNING)


def client_for(tracking_uri: str | None, registry_uri: str | None = None) -> MlflowClient:
    """The client of this process for these URIs; creating it creates (migrates) a new SQLite
    store one process at a time."""
    key = (os.getpid(), tracking_uri, registry_uri)
    client = _clients.get(key)
    if client is None:
        from mlflow import MlflowClient

        quiet_mlflow_info()
        with store_creation_lock(tracking_uri or ""):
            client = call_with_retry(lambda: MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri))
        _clients[key] = client
    return client
