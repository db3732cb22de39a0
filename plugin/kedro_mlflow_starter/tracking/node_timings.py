"""Node timings: each node's wall time and the pipeline's, as metrics sent in one batch.

Keys are ``time.node.<node name>`` and ``time.pipeline`` (seconds), so two runs compared in
the MLflow UI show which node got slower. No ``mlflow`` import until the batch is built.
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any

NODE_PREFIX = "time.node."
PIPELINE_KEY = "time.pipeline"
_INVALID = re.compile(r"[^/\w.\- ]")  # what MLflow accepts in a metric key
_MAX_KEY = 250


def metric_key(node_name: str) -> str:
    """``time.node.<name>``, with characters MLflow rejects in keys replaced by ``_``."""
    return (NODE_PREFIX + _INVALID.sub("_", node_name))[:_MAX_KEY]


class NodeTimer:
    """Wall time of each node of one pipeline run, loading its inputs and saving its outputs
    included (safe under ThreadRunner's threads).

    ``start`` is called before the node's first input loads (again before it runs: only the
    first call counts), ``stop`` after it ran and after each output is saved (the last counts).
    """

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

    def pipeline_seconds(self) -> float:
        return (self._pipeline_end or time.monotonic()) - self._pipeline_start

    def metrics(self, timestamp_ms: int | None = None) -> list[Any]:
        """``mlflow.entities.Metric`` for every timed node and the whole pipeline."""
        from mlflow.entities import Metric

        now = timestamp_ms if timestamp_ms is not None else int(time.time() * 1000)
        timed = self.seconds
        points = [Metric(metric_key(name), round(value, 6), now, 0) for name, value in sorted(timed.items())]
        points.append(Metric(PIPELINE_KEY, round(self.pipeline_seconds(), 6), now, 0))
        return points


def log_node_timings(client: Any, run_id: str, timer: NodeTimer) -> None:
    """All timings in one ``log_batch`` call (chunks of 1,000 for a pipeline of more nodes)."""
    points = timer.metrics()
    for start in range(0, len(points), 1000):
        client.log_batch(run_id, metrics=points[start:start + 1000])
