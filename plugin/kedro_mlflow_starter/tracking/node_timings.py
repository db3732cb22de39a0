"""Node timings: ``time.node.<node name>`` and ``time.pipeline`` (seconds), as run metrics."""

from __future__ import annotations

import re
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from mlflow.entities import Metric

NODE_PREFIX = "time.node."
PIPELINE_KEY = "time.pipeline"
_INVALID = re.compile(r"[^/\w.\- ]")  # what MLflow rejects in a metric key


def metric_key(node_name: str) -> str:
    """``time.node.<name>``, with characters MLflow rejects in keys replaced by ``_``."""
    return (NODE_PREFIX + _INVALID.sub("_", node_name))[:250]


class NodeTimer:
    """Wall time of each node, loading its inputs and saving its outputs included (thread-safe):
    the first ``start`` counts (before the first load), the last ``stop`` (after the last save)."""

    def __init__(self) -> None:
        self._started: dict[str, float] = {}
        self._ended: dict[str, float] = {}
        self._lock = threading.Lock()
        self._pipeline_start = time.monotonic()
        self._pipeline_end: float | None = None

    def start(self, node_name: str) -> None:
        now = time.monotonic()
        with self._lock:
            self._started.setdefault(node_name, now)

    def stop(self, node_name: str) -> None:
        now = time.monotonic()
        with self._lock:
            if node_name in self._started:
                self._ended[node_name] = now

    @property
    def seconds(self) -> dict[str, float]:
        with self._lock:
            return {name: end - self._started[name] for name, end in self._ended.items()}

    def stop_pipeline(self) -> None:
        """The pipeline's last node ran (what follows, e.g. logging the pipeline model, is not counted)."""
        self._pipeline_end = time.monotonic()

    def metrics(self) -> list[Metric]:
        """A ``Metric`` for every timed node and the whole pipeline."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        points = [Metric(metric_key(name), round(value, 6), now, 0) for name, value in sorted(self.seconds.items())]
        pipeline = (self._pipeline_end or time.monotonic()) - self._pipeline_start
        return [*points, Metric(PIPELINE_KEY, round(pipeline, 6), now, 0)]
