"""A ledger of what could not be logged to MLflow during a run.

When the tracking server goes away mid-run, the pipeline keeps going: datasets still
write their local files, and each logging call that fails (after a short retry) is
recorded here. The hook prints the list at the end so the user can re-log by hand.
The ledger is a JSON-lines file named by an environment variable, so ParallelRunner's
child processes append to the same list as the main process.

Once one call has failed for good, the server is known to be down: later calls in the
same ``kedro run`` (any process) make a single attempt instead of retrying again, so an
outage costs seconds, not a retry cycle per dataset. Error texts are recorded with the
credentials of any URI in them redacted.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable
from typing import Any, TypeVar

from kedro_mlflow_starter.config.uris import redact_uri
from kedro_mlflow_starter.run_context import ENV_FAILURE_LOG

T = TypeVar("T")
logger = logging.getLogger(__name__)

RETRY_DELAYS = (0.2, 0.5, 1.0)


def record_failure(what: str, local_path: str | None, error: BaseException) -> None:
    """Append one failed logging call to the ledger (or log it when there is none)."""
    entry = {"what": what, "local_path": local_path, "error": describe_error(error)}
    path = os.environ.get(ENV_FAILURE_LOG)
    if path:
        with open(path, "a", encoding="utf-8") as ledger:
            ledger.write(json.dumps(entry) + "\n")
    logger.warning("Could not log %s to MLflow: %s", what, entry["error"])


_CONNECTION_FAILED = re.compile(r"Failed to establish a new connection: (?P<reason>[^\"')]+)")
_REQUEST = re.compile(r"API request to (?P<url>\S+) failed")


def describe_error(error: BaseException, limit: int = 500) -> str:
    """``Type: message`` on one line, bounded, without credentials.

    A refused connection becomes ``cannot connect to <url> (<reason>)`` instead of
    urllib3's nested retry report.
    """
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


def is_transient(error: BaseException) -> bool:
    """True for errors that a tracking server outage produces (worth a retry)."""
    names = {cls.__name__ for cls in type(error).__mro__}
    if names & {"ConnectionError", "Timeout", "MaxRetryError", "OSError", "TimeoutError"}:
        return True
    text = str(error)
    return "Max retries exceeded" in text or "Connection refused" in text or "database is locked" in text


def call_with_retry(fn: Callable[[], T], delays: tuple[float, ...] = RETRY_DELAYS) -> T:
    """Call ``fn``; on a transient error retry after each delay, then re-raise.

    After an outage was recorded in this run, ``fn`` gets one attempt.
    """
    if outage_recorded():
        return fn()
    for delay in delays:
        try:
            return fn()
        except Exception as error:  # noqa: BLE001 - re-raised below when not transient
            if not is_transient(error):
                raise
            time.sleep(delay)
    return fn()
