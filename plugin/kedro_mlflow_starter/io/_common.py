"""Helpers shared by the MLflow datasets: which run to log into, and logging that survives outages.

Nothing here imports ``mlflow`` at module import time; datasets are built when the catalog
is created, long before anything is logged.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from kedro_mlflow_starter.tracking.current import active_run_id, tracking_disabled, user_run_id
from kedro_mlflow_starter.tracking.failures import log_or_record  # noqa: F401 - the datasets' import

T = TypeVar("T")

logger = logging.getLogger("kedro_mlflow_starter")

_warned_no_run = False


def catalog_entry_name() -> str | None:
    """The catalog entry a dataset is being built for (None when built by hand in Python)."""
    from kedro_mlflow_starter import compat

    return compat.catalog_entry_being_built()


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
    """The run a save logs into, or None: the dataset then acts as its local counterpart.

    In order: the dataset's own ``run_id``; the run of the current ``kedro run``; a run the
    user opened with ``mlflow.start_run()`` (when no Kedro run is open). With none of them, or
    when the hook disabled tracking for this pipeline, nothing is logged: a dataset never
    creates a stray run. Without a run and without the hook's say-so, one warning per process
    says so (``what`` names the catalog entry).
    """
    resolved = run_to_read(run_id)
    if resolved is None and not tracking_disabled():
        warn_no_run(what)
    return resolved


def warn_no_run(what: str) -> None:
    """Say once per process that MLflow datasets are saving locally and logging nothing."""
    global _warned_no_run
    if _warned_no_run:
        logger.debug("MLflow: %s saved locally; no MLflow run is open.", what)
        return
    _warned_no_run = True
    # One short line on every run of a user who opted out; the explanation is in the docs.
    logger.warning(
        "MLflow: no MLflow run is open; %s and the other MLflow datasets save locally and log nothing "
        "(see \"Opting out\" in docs/configuration.md).",
        what,
    )


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


class CatalogEntryDataset:
    """What the logging datasets share: the catalog entry they were built for (errors and
    warnings name it) and the public ``run_id`` (None: the current run) a user reads or sets.

    Mixed in before Kedro's ``AbstractDataset``; subclasses set ``self._run_id`` and call
    ``_bind_entry_now()`` at the end of ``__init__``.
    """

    _entry: str | None = None
    _run_id: str | None = None

    def _bind_entry_now(self) -> None:
        """Take the catalog entry name when Kedro builds this dataset (with or without the hook)."""
        entry = catalog_entry_name()
        if entry:
            self._bind_catalog_name(entry)

    def _bind_catalog_name(self, name: str) -> None:
        """Called at catalog creation (and by ``_bind_entry_now``): messages name the entry."""
        self._entry = name

    @property
    def run_id(self) -> str | None:
        """The run this dataset logs into and loads from (None: the current run)."""
        return self._run_id

    @run_id.setter
    def run_id(self, run_id: str | None) -> None:
        self._run_id = run_id
