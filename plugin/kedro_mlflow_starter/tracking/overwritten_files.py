"""Files a run saved that changed on disk before the run read them back. Two ``kedro run``s started at
the same time in one project write the same files (``data/06_models/classifier.pkl``...): a node of one
run may then read what the other run wrote, and the metrics and reports it logs are not its own. The
run cannot undo that, but its record says so: a warning, and the tag ``kedro_mlflow.overwritten_files``.
Versioned datasets save each run's file apart, so they are not watched."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from kedro_mlflow_starter.tracking.lineage import location_of, source_type_of
from kedro_mlflow_starter.tracking.run_config import catalog_entries

if TYPE_CHECKING:  # pragma: no cover
    from kedro.io import DataCatalog
    from kedro.pipeline import Pipeline

logger = logging.getLogger("kedro_mlflow_starter")

OVERWRITTEN_TAG = "kedro_mlflow.overwritten_files"


class OverwriteWatch:
    """The local files of the datasets a pipeline both writes and reads (unversioned), stamped when this
    process saves them and compared when it loads them."""

    def __init__(self, pipeline: Pipeline, catalog: DataCatalog) -> None:
        read_back = pipeline.all_outputs() & pipeline.all_inputs()
        self.paths: dict[str, str] = {}
        for name, entry in catalog_entries(catalog, read_back).items():
            location = location_of(entry)
            if location and source_type_of(location) == "local" and not entry.get("versioned"):
                self.paths[name] = os.path.abspath(location.removeprefix("file://"))
        self._stamps: dict[str, tuple[int, int] | None] = {}
        self.overwritten: dict[str, str] = {}  # dataset -> its file

    def saved(self, name: str) -> None:
        if name in self.paths:
            self._stamps[name] = _stamp(self.paths[name])

    def changed_since_saved(self, name: str) -> bool:
        """True the first time ``name`` is found changed since this run saved it."""
        if name not in self._stamps or name in self.overwritten or _stamp(self.paths[name]) == self._stamps[name]:
            return False
        self.overwritten[name] = self.paths[name]
        logger.warning(
            "MLflow: %s (dataset '%s') changed on disk after this run saved it: another process wrote it, e.g. a "
            "kedro run started at the same time in this project. What this run computes from it may not be its "
            "own; the run is tagged %s. Runs at the same time need their own files: versioned datasets, or one "
            "copy of the project each.", self.paths[name], name, OVERWRITTEN_TAG)
        return True

    def tag_value(self) -> str:
        return ", ".join(f"{name} ({path})" for name, path in sorted(self.overwritten.items()))[:5000]


def _stamp(path: str) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_size, info.st_mtime_ns
