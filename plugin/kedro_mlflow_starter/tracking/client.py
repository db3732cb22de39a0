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

# MLflow narrates routine steps at INFO ("Creating initial MLflow database tables..."); a kedro run
# prints its own summary. Their warnings still show, and a level the project set is left alone.
_CHATTY_MLFLOW_LOGGERS = ("mlflow.store.db.utils", "mlflow.pyfunc", "mlflow.models.model",
                          "mlflow.store.model_registry.abstract_store")  # "Waiting up to 300 seconds for model version..."


def client_for(tracking_uri: str | None, registry_uri: str | None = None) -> MlflowClient:
    """The client of this process for these URIs (a new SQLite store is created one process at a time)."""
    key = (os.getpid(), tracking_uri, registry_uri)
    client = _clients.get(key)
    if client is None:
        from mlflow import MlflowClient

        for name in _CHATTY_MLFLOW_LOGGERS:
            if logging.getLogger(name).level == logging.NOTSET:
                logging.getLogger(name).setLevel(logging.WARNING)
        with store_creation_lock(tracking_uri or ""):
            client = call_with_retry(lambda: MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri))
        _clients[key] = client
    return client
