"""A ledger of what could not be logged to MLflow during a run.

When the tracking server goes away mid-run, the pipeline keeps going: datasets still
write their local files, and each logging call that fails (after a short retry) is
recorded here. The hook prints the list at the end so the user can re-log by hand.
The ledger is a JSON-lines file named by an environment variable, so ParallelRunner's
child processes append to the same list as the main process.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

from kedro_mlflow_starter.run_context import ENV_FAILURE_LOG

T = TypeVar("T")
logger = logging.getLogger(__name__)

RETRY_DELAYS = (0.2, 0.5, 1.0)


def record_failure(what: str, local_path: str | None, error: BaseException) -> None:
    """Append one failed logging call to the ledger (or log it when there is none)."""
    entry = {"what": what, "local_path": local_path, "error": f"{type(error).__name__}: {error}"[:500]}
    path = os.environ.get(ENV_FAILURE_LOG)
    if path:
        with open(path, "a", encoding="utf-8") as ledger:
            ledger.write(json.dumps(entry) + "\n")
    logger.warning("Could not log %s to MLflow: %s", what, entry["error"])


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
    """Call ``fn``; on a transient error retry after each delay, then re-raise."""
    for delay in delays:
        try:
            return fn()
        except Exception as error:  # noqa: BLE001 - re-raised below when not transient
            if not is_transient(error):
                raise
            time.sleep(delay)
    return fn()
