"""The current Kedro run as every thread and process sees it: which run, which store.

The run object (``tracking.run``) publishes the run id, the store's URIs and the failure
ledger through environment variables, so datasets find them in any thread and in
ParallelRunner's child processes (fork and spawn alike), and so do the processes an
orchestrator starts once it hands them ``MLFLOW_RUN_ID``. Nothing here relies on MLflow's
fluent, thread-local "active run". ``mlflow`` is imported only when a client is first needed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from kedro_mlflow_starter.errors import NoActiveRunError

if TYPE_CHECKING:  # pragma: no cover
    from mlflow import MlflowClient

ENV_RUN_ID = "KEDRO_MLFLOW_RUN_ID"
ENV_TRACKING_DISABLED = "KEDRO_MLFLOW_TRACKING_DISABLED"
ENV_FAILURE_LOG = "KEDRO_MLFLOW_FAILURE_LOG"


def active_run_id() -> str | None:
    """The id of the run the current ``kedro run`` logs into, if any."""
    return os.environ.get(ENV_RUN_ID) or None


def tracking_disabled() -> bool:
    """True when this ``kedro run`` is deliberately not tracked."""
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


def store_uris() -> tuple[str | None, str | None]:
    """The tracking and registry URIs the current session published (None: MLflow's default)."""
    return os.environ.get("MLFLOW_TRACKING_URI"), os.environ.get("MLFLOW_REGISTRY_URI")


def current_client() -> MlflowClient:
    """The client of this process for the store the current session names."""
    from kedro_mlflow_starter.tracking.client import client_for

    return client_for(*store_uris())


class PublishedEnvironment:
    """Environment variables set for a while, then restored exactly as they were."""

    def __init__(self) -> None:
        self._saved: dict[str, str | None] = {}

    def set(self, values: Mapping[str, str | None]) -> None:
        """Set (or, for None, remove) each variable, remembering its first previous value."""
        for key, value in values.items():
            self._saved.setdefault(key, os.environ.get(key))
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    def store(self, tracking_uri: str, registry_uri: str | None) -> None:
        """Point MLflow (ours and the user's fluent calls) at this store."""
        self.set({"MLFLOW_TRACKING_URI": tracking_uri, "MLFLOW_REGISTRY_URI": registry_uri})

    def run(self, run_id: str, failure_log: str | None) -> None:
        """Make ``run_id`` the run every dataset and fluent ``mlflow.log_*`` call logs into."""
        self.set({ENV_RUN_ID: run_id, "MLFLOW_RUN_ID": run_id, ENV_TRACKING_DISABLED: None,
                  ENV_FAILURE_LOG: failure_log})

    def untracked(self) -> None:
        """Datasets save locally and log nothing."""
        self.set({ENV_TRACKING_DISABLED: "1", ENV_RUN_ID: None})

    def restore(self) -> None:
        for key, value in self._saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved = {}
