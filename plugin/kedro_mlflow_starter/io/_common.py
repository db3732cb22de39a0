"""Helpers shared by the MLflow datasets: which run to log into, and logging that survives outages.

Nothing here imports ``mlflow`` at module import time; datasets are built when the catalog
is created, long before anything is logged.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
from collections.abc import Callable
from typing import Any, TypeVar

from kedro_mlflow_starter.tracking.failures import call_with_retry, is_transient, record_failure
from kedro_mlflow_starter.tracking.current import require_run_id, tracking_disabled

T = TypeVar("T")


def run_to_log_into(what: str, run_id: str | None) -> str | None:
    """The run a save should log into, or None when the hook disabled tracking for this run.

    Raises ``NoActiveRunError`` (a Kedro ``DatasetError``) (before anything is written) when there is no run at all:
    a dataset never creates a stray run on its own.
    """
    if tracking_disabled():
        return None
    return require_run_id(what, run_id)


def log_or_record(what: str, local_path: str | None, log: Callable[[], Any]) -> bool:
    """Run a store call with retries; record an outage instead of failing the pipeline.

    Returns True when the call succeeded. Errors that a server outage does not explain
    (a bad run id, a bad key...) are raised: they are the user's to fix, not to skip.
    """
    try:
        call_with_retry(log)
    except Exception as error:
        if not is_transient(error):
            raise
        record_failure(what, local_path, error)
        return False
    return True


def module_exists(dotted_name: str) -> bool:
    """True when ``dotted_name`` names an importable module, found without importing it.

    Checking ``mlflow.sklearn`` with ``importlib.util.find_spec`` would import ``mlflow``;
    walking the package folders with the path finder does not.
    """
    parts = dotted_name.split(".")
    if not all(part.isidentifier() for part in parts):
        return False
    try:
        spec = importlib.util.find_spec(parts[0])
    except (ImportError, ValueError):
        return False
    for part in parts[1:]:
        if spec is None or not spec.submodule_search_locations:
            return False
        spec = importlib.machinery.PathFinder.find_spec(part, list(spec.submodule_search_locations))
    return spec is not None


def short(value: Any, limit: int = 200) -> str:
    """A one-line, bounded description of ``value`` for failure reports."""
    text = repr(value).replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."
