"""MLflow's bare model-registration prints to stderr, turned into one log line per version::

    INFO  MLflow: registered version 1 of model 'iris_mlflow' (a new registered model).
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
from collections.abc import Iterator
from typing import TextIO

logger = logging.getLogger("kedro_mlflow_starter")

_NEW_MODEL = re.compile(r"^Successfully registered model '(?P<name>.+)'\.$")
_EXISTING_MODEL = re.compile(r"^Registered model '(?P<name>.+)' already exists\. Creating a new version of this model")
_NEW_VERSION = re.compile(r"^Created version '(?P<version>[^']+)' of model '(?P<name>.+)'\.?$")


class _RegistrationLines:
    """A stderr stand-in: whole lines that are MLflow's registration notices are kept, the rest pass."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.pending = ""
        self.new_models: set[str] = set()
        self.versions: list[tuple[str, str]] = []  # (model name, version)

    def write(self, text: str) -> int:
        self.pending += text
        while "\n" in self.pending:
            line, self.pending = self.pending.split("\n", 1)
            self._line(line)
        return len(text)

    def _line(self, line: str) -> None:
        if match := _NEW_MODEL.match(line.strip()):
            self.new_models.add(match["name"])
        elif _EXISTING_MODEL.match(line.strip()):
            pass  # the version line says it all
        elif match := _NEW_VERSION.match(line.strip()):
            self.versions.append((match["name"], match["version"]))
        else:
            self.stream.write(line + "\n")

    def flush(self) -> None:
        self.stream.flush()

    def close_and_report(self) -> None:
        if self.pending:
            self._line(self.pending)
            self.pending = ""
        self.stream.flush()
        for name, version in self.versions:
            new = " (a new registered model)" if name in self.new_models else ""
            logger.info("MLflow: registered version %s of model '%s'%s.", version, name, new)
        for name in sorted(self.new_models - {name for name, _ in self.versions}):
            logger.info("MLflow: registered model '%s'.", name)

    def __getattr__(self, name: str):  # isatty, encoding, fileno...: the real stream's
        return getattr(self.stream, name)


@contextlib.contextmanager
def mlflow_prints_logged() -> Iterator[None]:
    """Within the block, MLflow's registration notices become log lines; every other stderr line passes unchanged,
    and Kedro's "Loading data from ..." lines of the model's packing are left out (the catalog's INFO log)."""
    real = sys.stderr
    lines = _RegistrationLines(real)
    catalog_log = logging.getLogger("kedro.io.data_catalog")
    catalog_level = catalog_log.level
    if catalog_log.getEffectiveLevel() < logging.WARNING:
        catalog_log.setLevel(logging.WARNING)
    sys.stderr = lines  # type: ignore[assignment]
    try:
        yield
    finally:
        if sys.stderr is lines:
            sys.stderr = real
        catalog_log.setLevel(catalog_level)
        lines.close_and_report()
