"""What the three metric datasets share: number checks, ``log_batch`` of points, the run to read."""

from __future__ import annotations

import abc
import time
from numbers import Real
from typing import TYPE_CHECKING, Any, ClassVar

from kedro.io.core import AbstractDataset, DatasetError

from kedro_mlflow_starter.compat import catalog_entry_being_built
from kedro_mlflow_starter.io._common import describe_entry, run_to_read, short
from kedro_mlflow_starter.tracking.current import current_client
from kedro_mlflow_starter.tracking.failures import log_or_record
from kedro_mlflow_starter.tracking.retries import points_not_logged

if TYPE_CHECKING:
    from mlflow.entities import Metric


def as_number(value: Any, where: str) -> float:
    """``value`` as a float, or an error naming the metric and what is allowed."""
    if type(value).__module__ == "numpy" and getattr(value, "size", 0) == 1:
        value = value.item()  # a numpy scalar or a one-element array
    if isinstance(value, bool) or not isinstance(value, Real):
        raise DatasetError(
            f"{where}: a metric value must be a number (int or float), got {short(value, 80)} of "
            f"type {type(value).__name__}. Return a number from the node, e.g. `float(score)`."
        )
    return float(value)


def as_step(value: Any, where: str) -> int:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise DatasetError(f"{where}: a metric step must be a whole number, got {value!r}.")
    return value


def log_points(what: str, run_id: str, points: list[tuple[Any, ...]]) -> None:
    """Send (key, value, step[, timestamp in ms]) points in one ``log_batch`` (MLflow's client
    splits it within the store's limits); a point without a timestamp is stamped now."""
    from mlflow.entities import Metric

    client = current_client()
    now = int(time.time() * 1000)
    metrics = [Metric(point[0], point[1], point[3] if len(point) > 3 and point[3] is not None else now, point[2])
               for point in points]
    metrics = points_not_logged(client, run_id, metrics)  # a retried task logs no point twice
    more = f" and {len(metrics) - 5} more" if len(metrics) > 5 else ""
    log_or_record(
        f"{what}: {short([(m.key, m.step, m.value) for m in metrics[:5]], 150)}{more}",
        None,
        lambda: client.log_batch(run_id, metrics=metrics),
        replay={"kind": "metrics", "points": [[m.key, m.value, m.step, m.timestamp] for m in metrics]},
    )


def history(run_id: str, key: str) -> list[Metric]:
    """Every point of ``key`` in ``run_id``, ordered by step, then time (stable for ties)."""
    return sorted(current_client().get_metric_history(run_id, key), key=lambda metric: (metric.step, metric.timestamp))


class MetricDatasetBase(AbstractDataset[Any, Any]):
    """The run a metric dataset reads and the values it keeps when no run is open; ``name`` is the metric key
    (or the prefix), called ``NAME_ARG`` in messages."""

    DEFAULT_LOAD_ARGS: ClassVar[dict[str, Any]] = {}
    DEFAULT_SAVE_ARGS: ClassVar[dict[str, Any]] = {}
    NAME_ARG: ClassVar[str] = "key"

    def __init__(self, *, run_id: str | None, load_args: dict[str, Any] | None,
                 save_args: dict[str, Any] | None, metadata: dict[str, Any] | None) -> None:
        self.run_id = run_id
        self._load_args = {**self.DEFAULT_LOAD_ARGS, **(load_args or {})}
        self._save_args = {**self.DEFAULT_SAVE_ARGS, **(save_args or {})}
        self._entry = catalog_entry_being_built()
        self._kept: Any = None
        self.metadata = metadata

    @property
    @abc.abstractmethod
    def name(self) -> str | None:
        """The metric key, or the prefix of the metric keys."""

    def _what(self) -> str:
        return describe_entry(type(self).__name__, self._entry, self.name)

    def _required_name(self) -> str:
        if not self.name:
            raise DatasetError(
                f"{type(self).__name__} has no `{self.NAME_ARG}`: set `{self.NAME_ARG}:` in its "
                "catalog entry, or use it through a Kedro session with kedro-mlflow-starter "
                f"installed (the catalog entry name becomes the {self.NAME_ARG})."
            )
        return self.name

    def _kept_or_fail(self) -> Any:
        """What this dataset saved in this process without logging it (no run was open)."""
        if self._kept is None:
            raise DatasetError(
                f"{self._what()} has nothing to load: no MLflow run is open and nothing was saved "
                "to it in this process. Set `run_id:` in its catalog entry to read an earlier run, "
                "open a run with `mlflow.start_run()`, or load it inside `kedro run`."
            )
        return self._kept

    def _describe(self) -> dict[str, Any]:
        return {self.NAME_ARG: self.name, "run_id": self.run_id or "<current kedro run>",
                "save_args": self._save_args, "load_args": self._load_args}

    def _exists(self) -> bool:
        if self._kept is not None:
            return True
        run_id = run_to_read(self.run_id)
        if run_id is None or not self.name:
            return False
        return any(self._owns(key) for key in current_client().get_run(run_id).data.metrics)

    def _owns(self, key: str) -> bool:
        return key == self.name
