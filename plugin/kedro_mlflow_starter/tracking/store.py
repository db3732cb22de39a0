"""Reaching the tracking store: a bounded reachability check, one process at a time creating a
SQLite store, and the environment MLflow's client reads (bounded retries, the file store opt-in)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

from kedro_mlflow_starter.config.redaction import redact_uri
from kedro_mlflow_starter.errors import NotAnMlflowServerError, TrackingStoreUnreachableError

# MLflow's REST client retries 7 times with exponential backoff (minutes): a kedro run should fail
# or degrade within seconds. MLflow would also print run links with the URI's credentials.
HTTP_RETRY_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
}
MLFLOW_API_PROBE = "/api/2.0/mlflow/experiments/search?max_results=1"


@contextlib.contextmanager
def store_creation_lock(uri: str) -> Iterator[None]:
    """Serialise the creation (migration) of a local SQLite store between processes: an advisory
    ``flock`` on the database file itself (an empty file is a new database to SQLite and MLflow)."""
    location = uri[len("sqlite:///"):] if uri.startswith("sqlite:///") else ""
    if location in ("", ":memory:"):
        yield
        return
    path = Path(location)
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
    """For an http(s) tracking server, fail fast when it does not answer its health check
    within ``timeout`` seconds (``server.connect_timeout``)."""
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
            return  # a server answered; its certificate is MLflow's to check
        if isinstance(reason, (TimeoutError, socket.timeout)):
            problem = f"no answer within server.connect_timeout = {timeout:g} s"
        else:
            problem = str(reason)
    raise TrackingStoreUnreachableError(uri, problem)


def check_speaks_mlflow(uri: str, timeout: float) -> None:
    """Raise ``NotAnMlflowServerError`` when ``uri`` answers HTTP but not MLflow's REST API
    (which answers JSON: the experiments, or an ``error_code``)."""
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
    shown = redact_uri(uri).rstrip("/")
    raise NotAnMlflowServerError(
        f"The tracking URI {shown} answers HTTP, but it is not an MLflow tracking server: {shown}/health and "
        f"MLflow's REST API ({MLFLOW_API_PROBE.split('?')[0]}) answered HTTP {status} with no MLflow reply. "
        "No node has run. Fix server.mlflow_tracking_uri in conf/*/mlflow.yml (or MLFLOW_TRACKING_URI): "
        "the address `mlflow server` prints when it starts (e.g. http://127.0.0.1:5000), with the path prefix "
        "if a proxy serves MLflow under one; or remove it to use the embedded store (sqlite:///mlflow.db)."
    )


def _without_userinfo(uri: str) -> str:
    """The checks need no credentials, and urllib would not accept them in the URL."""
    parts = urlparse(uri)
    if "@" not in parts.netloc:
        return uri
    return parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]).geturl()


def http_retry_env() -> dict[str, str]:
    """The bounded-retry and quiet settings not already chosen by the user."""
    return {key: value for key, value in HTTP_RETRY_DEFAULTS.items() if key not in os.environ}


def file_store_env(uri: str) -> dict[str, str]:
    """MLflow 3 refuses a ``file:`` store unless ``MLFLOW_ALLOW_FILE_STORE`` is set: a folder
    written in ``mlflow.yml`` is a deliberate choice."""
    if not uri.startswith("file:") or "MLFLOW_ALLOW_FILE_STORE" in os.environ:
        return {}
    return {"MLFLOW_ALLOW_FILE_STORE": "true"}

