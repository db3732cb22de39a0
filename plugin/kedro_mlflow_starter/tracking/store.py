"""Reaching the tracking store: a bounded reachability check and safe SQLite creation.

A fresh SQLite store spends about a second on schema migrations, and two processes
migrating the same new file at once corrupt each other's work; a file lock next to the
database makes the first one create it while the second waits.
"""

from __future__ import annotations

import contextlib
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

# MLflow's REST client retries up to 7 times with exponential backoff (minutes). A kedro run
# should fail or degrade within seconds instead; users can still set these themselves.
HTTP_RETRY_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}


class TrackingStoreUnreachableError(RuntimeError):
    """The tracking store could not be reached when the run started."""


def sqlite_path(uri: str) -> Path | None:
    if not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///"):]
    return None if path in ("", ":memory:") else Path(path)


@contextlib.contextmanager
def store_creation_lock(uri: str) -> Iterator[None]:
    """Serialise the creation/migration of a local SQLite store between processes."""
    path = sqlite_path(uri)
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks, MLflow's own retry must do
        yield
        return
    with open(path.with_name(path.name + ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def check_reachable(uri: str, timeout: float) -> None:
    """For an http(s) tracking server, fail fast when it does not answer its health check."""
    scheme = urlparse(uri).scheme
    if scheme not in ("http", "https"):
        return
    health = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(health, timeout=timeout) as response:  # noqa: S310 - http(s) only
            if response.status < 500:
                return
            problem = f"it answered HTTP {response.status}"
    except urllib.error.HTTPError as error:
        if error.code < 500:  # e.g. 401/404: a server is there (auth or a proxy); let MLflow report
            return
        problem = f"it answered HTTP {error.code}"
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        problem = f"{reason}"
    raise TrackingStoreUnreachableError(
        f"MLflow tracking server {uri} is unreachable ({problem}). Check that the server is running and "
        "the address in server.mlflow_tracking_uri (mlflow.yml) or MLFLOW_TRACKING_URI is right, or set "
        "server.on_unreachable: run_untracked to run the pipeline without tracking."
    )


def http_retry_env() -> dict[str, str]:
    """The bounded-retry settings not already chosen by the user."""
    return {key: value for key, value in HTTP_RETRY_DEFAULTS.items() if key not in os.environ}
