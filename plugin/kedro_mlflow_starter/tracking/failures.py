"""The run's failure policy and its ledger (a JSON-lines file every worker process appends to): an outage of the
tracking store is recorded and the pipeline goes on; anything else raises."""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

from kedro_mlflow_starter.config.redaction import redact_uri
from kedro_mlflow_starter.tracking.current import ENV_FAILURE_LOG

T = TypeVar("T")
logger = logging.getLogger(__name__)

RETRY_DELAYS = (0.2, 0.5, 1.0)


def record_failure(what: str, local_path: str | None, error: BaseException,
                   replay: Mapping[str, Any] | None = None) -> None:
    """Append one failed logging call to the ledger (or log it when there is none); ``replay`` (JSON-able) is kept,
    with a copy of ``local_path``, in the run's pending folder for ``kedro mlflow run replay``."""
    entry: dict[str, Any] = {"what": what, "local_path": local_path, "error": describe_error(error)}
    if replay is not None:
        from kedro_mlflow_starter.tracking.replay import keep_for_replay

        entry["pending"], copy = keep_for_replay(what, local_path, replay)
        temp_folder = os.path.abspath(tempfile.gettempdir()) + os.sep
        if copy and local_path and os.path.abspath(local_path).startswith(temp_folder):
            entry["local_path"] = copy  # the temp copy is removed when the run ends; this one stays
    path = os.environ.get(ENV_FAILURE_LOG)
    if path:
        with open(path, "a", encoding="utf-8") as ledger:
            ledger.write(json.dumps(entry) + "\n")
    logger.warning("Could not log %s to MLflow: %s", what, entry["error"])


_CONNECTION_FAILED = re.compile(r"Failed to establish a new connection: (?P<reason>[^\"')]+)")
_REQUEST = re.compile(r"API request to (?P<url>\S+) failed")


def describe_error(error: BaseException, limit: int = 500) -> str:
    """``Type: message`` on one line, bounded, without credentials; a refused connection becomes
    ``cannot connect to <url> (<reason>)`` instead of urllib3's nested retry report."""
    text = redact_uri(f"{type(error).__name__}: {error}").replace("\n", " ")
    refused = _CONNECTION_FAILED.search(text)
    if refused:
        request = _REQUEST.search(text)
        target = request.group("url") if request else "the tracking server"
        text = f"cannot connect to {target} ({refused.group('reason').strip()})"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def outage_recorded() -> bool:
    """True when a logging call of this ``kedro run`` already failed for good."""
    path = os.environ.get(ENV_FAILURE_LOG)
    try:
        return bool(path) and os.path.getsize(path) > 0
    except OSError:
        return False


def read_failures(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every entry recorded in the ledger at ``path``."""
    try:
        with open(path, encoding="utf-8") as ledger:
            return [json.loads(line) for line in ledger if line.strip()]
    except FileNotFoundError:
        return []


# A local mistake (a missing file, no permission) is an OSError too, but no retry or
# "the server is down" report can help with it: it must fail as what it is.
_LOCAL_OS_ERRORS = (FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError, NotADirectoryError)
_NETWORK_ERRNOS = {
    errno.ECONNREFUSED, errno.ECONNRESET, errno.ECONNABORTED, errno.EHOSTUNREACH, errno.ENETUNREACH,
    errno.ENETDOWN, errno.ETIMEDOUT, errno.EPIPE,
}
_TRANSIENT_CLASS_NAMES = {"ConnectionError", "Timeout", "MaxRetryError", "TimeoutError", "ProtocolError",
                          "NewConnectionError", "ReadTimeoutError", "ConnectTimeoutError"}


def is_transient(error: BaseException) -> bool:
    """True for errors that a tracking server outage produces (worth a retry)."""
    if isinstance(error, _LOCAL_OS_ERRORS):
        return False
    names = {cls.__name__ for cls in type(error).__mro__}
    if names & _TRANSIENT_CLASS_NAMES:
        return True
    if isinstance(error, OSError) and error.errno in _NETWORK_ERRNOS:
        return True
    text = str(error)
    return "Max retries exceeded" in text or "Connection refused" in text or "database is locked" in text


def describe_failures(failures: list[dict[str, Any]], run_id: str, status: str, status_recorded: bool,  # noqa: PLR0913
                      env: str | None = None) -> str:
    """The message of ``TrackingIncompleteError``: each lost item, its local copy, what to do."""
    lines = [f"The pipeline ran, but {len(failures)} item(s) could not be logged to MLflow run {run_id}:"]
    for entry in failures:
        where = f" (local copy: {entry['local_path']})" if entry.get("local_path") else ""
        lines.append(f"  - {entry['what']}{where}: {entry['error']}")
    lines.append("Your pipeline's outputs are on disk (nothing was deleted).")
    if all(entry.get("pending") for entry in failures if not entry.get("status_only")):
        from kedro_mlflow_starter.tracking.replay import pending_folder_hint, replay_command

        lines.append(f"Each item is kept in {pending_folder_hint(run_id)}: once the tracking server is back, "
                     f"`{replay_command(run_id, env)}` logs them into the run and ends it with the "
                     "status it earned (FINISHED when the pipeline succeeded).")
        if not status_recorded:
            lines.append("Until then the run shows as RUNNING.")
        elif status != "FINISHED":
            lines.append(f"Until then the run is marked {status}.")
        return "\n".join(lines)
    lines.append("Re-log the items above once the tracking server is back.")
    if status_recorded:
        lines.append(f"The run is marked {status}.")
    else:
        lines.append("The run could not be closed and shows as RUNNING: mark it with "
                     "`kedro mlflow stale-runs --mark-killed` once the server is back.")
    return "\n".join(lines)


# MLflow's SQL store checks whether a row exists, then inserts it: of two processes writing the same row, the
# later fails on the unique constraint (a 400 through a server); a retry sees the other's row and reuses it.
_LOST_INSERT_RACE = ("UNIQUE constraint failed", "duplicate key value violates unique constraint",
                     "Duplicate entry", "IntegrityError")


def lost_insert_race(error: BaseException) -> bool:
    """True for a unique-constraint error of the store: another process wrote the same row first."""
    text = str(error)
    return any(marker in text for marker in _LOST_INSERT_RACE)


def retry_lost_insert_race(fn: Callable[[], T], delays: tuple[float, ...] = (0.05, 0.2, 0.5)) -> T:
    """Call ``fn``; when it lost an insert race to another writer, call it again after each delay."""
    return retrying(fn, delays, lost_insert_race)


def call_with_retry(fn: Callable[[], T], delays: tuple[float, ...] = RETRY_DELAYS) -> T:
    """Call ``fn``; on a transient error retry after each delay, then re-raise. Once an outage was recorded in
    this run, ``fn`` gets one attempt, without MLflow's own HTTP retries."""
    if outage_recorded():
        with _no_http_retries():
            return fn()
    return retrying(fn, delays, is_transient)


_HTTP_RETRIES = "MLFLOW_HTTP_REQUEST_MAX_RETRIES"
_retries_lock = threading.Lock()
_retries_users = 0
_retries_saved: str | None = None


@contextlib.contextmanager
def _no_http_retries() -> Iterator[None]:
    """``MLFLOW_HTTP_REQUEST_MAX_RETRIES=0`` while the call runs (MLflow reads it per request); counted, so that
    threads calling at once restore the run's value when the last of them is done."""
    global _retries_users, _retries_saved
    with _retries_lock:
        if _retries_users == 0:
            _retries_saved = os.environ.get(_HTTP_RETRIES)
            os.environ[_HTTP_RETRIES] = "0"
        _retries_users += 1
    try:
        yield
    finally:
        with _retries_lock:
            _retries_users -= 1
            if _retries_users == 0:
                if _retries_saved is None:
                    os.environ.pop(_HTTP_RETRIES, None)
                else:
                    os.environ[_HTTP_RETRIES] = _retries_saved


def retrying(fn: Callable[[], T], delays: tuple[float, ...], retryable: Callable[[BaseException], bool]) -> T:
    """Call ``fn``; after an error ``retryable`` accepts, wait each delay and call it again (the last
    attempt's error propagates); any other error propagates at once."""
    for delay in delays:
        try:
            return fn()
        except Exception as error:  # noqa: BLE001 - re-raised below when it is not retryable
            if not retryable(error):
                raise
            time.sleep(delay)
    return fn()


class Outage:
    """What ``outage_policy`` yields: ``error`` is the outage that stopped the block, if any."""

    error: BaseException | None = None


@contextlib.contextmanager
def outage_policy(what: str | None, local_path: str | None = None,
                  replay: Mapping[str, Any] | Callable[[], Mapping[str, Any]] | None = None,
                  transient: Callable[[BaseException], bool] = is_transient) -> Iterator[Outage]:
    """The one failure policy of a run: an outage of the tracking store (``transient``) stops the block and is
    recorded in the run's ledger as ``what`` (with ``replay``, a mapping or a function building one); with
    ``what`` None it is only handed to the caller as ``outage.error``. Anything else raises::

        with outage_policy("metric 'loss'", replay={"kind": "metric", ...}) as outage:
            call_with_retry(lambda: client.log_metric(run_id, "loss", 0.1))
        return outage.error is None
    """
    outage = Outage()
    try:
        yield outage
    except Exception as error:
        if not transient(error):
            raise
        outage.error = error
        if what is not None:
            record_failure(what, local_path, error, replay=replay() if callable(replay) else replay)


def log_or_record(what: str, local_path: str | None, log: Callable[[], Any],
                  replay: Mapping[str, Any] | None = None) -> bool:
    """``log()`` with retries under ``outage_policy``: True when it reached the store."""
    with outage_policy(what, local_path, replay) as outage:
        call_with_retry(log)
    return outage.error is None
