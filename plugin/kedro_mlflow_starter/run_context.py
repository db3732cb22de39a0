"""Where the current Kedro run logs to, shared by the hook, the datasets and child processes.

The hook owns one MLflow run per ``kedro run`` and publishes its id and the tracking URI
through environment variables, so datasets find it in any thread and in ParallelRunner's
child processes (fork and spawn alike). Nothing here relies on MLflow's fluent,
thread-local "active run". ``mlflow`` is imported only when a client is first needed.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from mlflow import MlflowClient

ENV_RUN_ID = "KEDRO_MLFLOW_RUN_ID"
ENV_TRACKING_DISABLED = "KEDRO_MLFLOW_TRACKING_DISABLED"
ENV_FAILURE_LOG = "KEDRO_MLFLOW_FAILURE_LOG"

_clients: dict[tuple[int, str | None, str | None], MlflowClient] = {}


class NoActiveRunError(RuntimeError):
    """Raised when a dataset must log but no Kedro MLflow run is open."""


def active_run_id() -> str | None:
    """The id of the run the current ``kedro run`` logs into, if any."""
    return os.environ.get(ENV_RUN_ID) or None


def tracking_disabled() -> bool:
    """True when the hook decided this ``kedro run`` is not tracked."""
    return os.environ.get(ENV_TRACKING_DISABLED) == "1"


def require_run_id(what: str, run_id: str | None = None) -> str:
    """Return ``run_id`` or the current run's id, or explain how to get a run."""
    resolved = run_id or active_run_id()
    if resolved is None:
        raise NoActiveRunError(
            f"{what} has no MLflow run to log into. Run it inside `kedro run` (the "
            "kedro-mlflow-starter hook opens the run), or give the dataset an explicit "
            "`run_id:`, or set the KEDRO_MLFLOW_RUN_ID environment variable to an existing run id."
        )
    return resolved


def get_client() -> MlflowClient:
    """An ``MlflowClient`` for the configured tracking/registry URIs, one per process."""
    key = (os.getpid(), os.environ.get("MLFLOW_TRACKING_URI"), os.environ.get("MLFLOW_REGISTRY_URI"))
    client = _clients.get(key)
    if client is None:
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=key[1], registry_uri=key[2])
        _clients[key] = client
    return client
