"""What the MLflow datasets share: which run to log into or read from, and how messages name them."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import logging
from typing import Any

from kedro_mlflow_starter.tracking.current import active_run_id, tracking_disabled, user_run_id

logger = logging.getLogger("kedro_mlflow_starter")

_warned_no_run = False


def describe_entry(dataset: str, entry: str | None, fallback: str | None = None) -> str:
    """How messages name a dataset: its catalog entry when known (``'sklearn_model'
    (MlflowModelTrackingDataset)``), never an internal default such as a model's name."""
    if entry:
        return f"'{entry}' ({dataset})"
    return f"{dataset} '{fallback}'" if fallback else dataset


def run_to_read(run_id: str | None) -> str | None:
    """The run a load reads from: ``run_id``, the Kedro run, or the user's ``mlflow.start_run()``."""
    if run_id:
        return run_id
    current = active_run_id()
    if current or tracking_disabled():
        return current
    return user_run_id()


def run_to_log_into(what: str, run_id: str | None) -> str | None:
    """The run a save logs into, or None: the dataset then acts as its local counterpart and logs
    nothing (it never creates a stray run). Without a run and without the hook's say-so, one
    warning per process says so (``what`` names the catalog entry)."""
    global _warned_no_run
    resolved = run_to_read(run_id)
    if resolved is not None or tracking_disabled():
        return resolved
    if _warned_no_run:
        logger.debug("MLflow: %s saved locally; no MLflow run is open.", what)
    else:
        _warned_no_run = True
        logger.warning(
            "MLflow: no MLflow run is open; %s and the other MLflow datasets save locally and log nothing "
            "(see \"Opting out\" in docs/configuration.md).",
            what,
        )
    return None


def module_exists(dotted_name: str) -> bool:
    """True when ``dotted_name`` names an importable module, found without importing it
    (``importlib.util.find_spec("mlflow.sklearn")`` would import ``mlflow``)."""
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
