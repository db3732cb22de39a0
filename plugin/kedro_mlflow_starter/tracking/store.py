"""Reaching the tracking store: a bounded reachability check and safe SQLite creation.

A fresh SQLite store spends about a second on schema migrations, and two processes
migrating the same new file at once break each other's work; a file lock makes the first
one create it while the second waits.
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

from kedro_mlflow_starter.errors import NotAnMlflowServerError, TrackingStoreUnreachableError

# MLflow's REST client retries up to 7 times with exponential backoff (minutes). A kedro run
# should fail or degrade within seconds instead; users can still set these themselves.
HTTP_RETRY_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}


def sqlite_path(uri: str) -> Path | None:
    if not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///"):]
    return None if path in ("", ":memory:") else Path(path)


@contextlib.contextmanager
def store_creation_lock(uri: str) -> Iterator[None]:
    """Serialise the creation/migration of a local SQLite store between processes.

    The lock is an advisory ``flock`` on the database file itself (created empty if need be:
    SQLite and MLflow treat an empty file as a new database), so no lock file is left
    anywhere. ``flock`` locks are independent of the POSIX record locks SQLite takes.
    """
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
    with open(path, "ab") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def check_reachable(uri: str, timeout: float) -> None:
    """For an http(s) tracking server, fail fast when it does not answer its health check.

    One request bounded by ``timeout`` seconds (``server.connect_timeout``): a server that is
    down is refused at once, one that hangs is given up on after ``timeout``.
    """
    scheme = urlparse(uri).scheme
    if scheme not in ("http", "https"):
        return
    health = _without_userinfo(uri).rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(health, timeout=timeout) as response:  # noqa: S310 - http(s) only
            if response.status < 500:
                return
            problem = f"it answered HTTP {response.status}"
    except urllib.error.HTTPError as error:
        if error.code == 404:  # noqa: PLR2004 - a web server, but MLflow's /health is missing: ask its API
            check_speaks_mlflow(uri, timeout)
            return
        if error.code < 500:  # e.g. 401/403: a server is there (auth); let MLflow report
            return
        problem = f"it answered HTTP {error.code}"
    except (TimeoutError, socket.timeout):
        problem = f"no answer within server.connect_timeout = {timeout:g} s"
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        if isinstance(reason, ssl.SSLError) or isinstance(error, ssl.SSLError):
            # A server answered; its certificate is MLflow's to check (MLflow honours
            # MLFLOW_TRACKING_SERVER_CERT_PATH, MLFLOW_TRACKING_INSECURE_TLS, REQUESTS_CA_BUNDLE).
            return
        if isinstance(reason, (TimeoutError, socket.timeout)):
            problem = f"no answer within server.connect_timeout = {timeout:g} s"
        else:
            problem = str(reason)
    raise TrackingStoreUnreachableError(uri, problem)


MLFLOW_API_PROBE = "/api/2.0/mlflow/experiments/search?max_results=1"


def check_speaks_mlflow(uri: str, timeout: float) -> None:
    """Raise ``NotAnMlflowServerError`` when ``uri`` answers HTTP but its MLflow REST API does not.

    An MLflow server answers the probe with JSON (the experiments, or an ``error_code`` when
    it refuses); any web server or proxy without MLflow behind it answers a 404 page.
    """
    import json

    probe = _without_userinfo(uri).rstrip("/") + MLFLOW_API_PROBE
    try:
        with urllib.request.urlopen(probe, timeout=timeout) as response:  # noqa: S310 - http(s) only
            status, body = response.status, response.read(65536)
    except urllib.error.HTTPError as error:
        if error.code in (401, 403) or error.code >= 500:  # noqa: PLR2004 - auth or an outage: MLflow reports it
            return
        status, body = error.code, error.read(65536)
    except (urllib.error.URLError, OSError, ValueError):
        return  # not answering now: the run's own calls report it
    try:
        answer = json.loads(body)
    except ValueError:
        answer = None
    if isinstance(answer, dict) and ("experiments" in answer or "error_code" in answer or not answer):
        return
    from kedro_mlflow_starter.config.redaction import redact_uri

    shown = redact_uri(uri).rstrip("/")
    raise NotAnMlflowServerError(
        f"The tracking URI {shown} answers HTTP, but it is not an MLflow tracking server: {shown}/health and "
        f"MLflow's REST API ({MLFLOW_API_PROBE.split('?')[0]}) answered HTTP {status} with no MLflow reply. "
        "No node has run. Fix server.mlflow_tracking_uri in conf/*/mlflow.yml (or MLFLOW_TRACKING_URI): "
        "the address `mlflow server` prints when it starts (e.g. http://127.0.0.1:5000), with the path prefix "
        "if a proxy serves MLflow under one; or remove it to use the embedded store (sqlite:///mlflow.db)."
    )


def _without_userinfo(uri: str) -> str:
    """The health check needs no credentials, and urllib would not accept them in the URL."""
    parts = urlparse(uri)
    if "@" not in parts.netloc:
        return uri
    return parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]).geturl()


# MLflow prints "View run ... at: <tracking URI>/#/..." when a run ends, credentials of the URI
# included; the hook prints its own link with them redacted.
QUIET_DEFAULTS = {"MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true"}


def http_retry_env() -> dict[str, str]:
    """The bounded-retry and quiet settings not already chosen by the user."""
    defaults = {**HTTP_RETRY_DEFAULTS, **QUIET_DEFAULTS}
    return {key: value for key, value in defaults.items() if key not in os.environ}


def file_store_env(uri: str) -> dict[str, str]:
    """Opt in to MLflow 3's file store when the project chose a local folder on purpose.

    MLflow 3 refuses ``./mlruns``-style stores unless ``MLFLOW_ALLOW_FILE_STORE`` is set; a
    folder written in ``mlflow.yml`` (or given at ``kedro new``) is such a deliberate choice.
    """
    if not uri.startswith("file:") or "MLFLOW_ALLOW_FILE_STORE" in os.environ:
        return {}
    return {"MLFLOW_ALLOW_FILE_STORE": "true"}

