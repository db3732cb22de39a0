"""``MlflowMetricsHistoryDataset``: several metrics at once, each logged as ``<prefix>.<name>``."""

from __future__ import annotations

from collections.abc import Mapping
from types import EllipsisType
from typing import Any, ClassVar

from kedro.io.core import DatasetError

from kedro_mlflow_starter.io._common import run_to_log_into, run_to_read, short
from kedro_mlflow_starter.io._metric_base import MetricDatasetBase, as_number, as_step, history, log_points
from kedro_mlflow_starter.tracking.current import current_client


class MlflowMetricsHistoryDataset(MetricDatasetBase):
    """Several metrics at once, each logged as ``<prefix>.<name>`` (``prefix``: the catalog entry name by
    default; ``prefix: null`` logs the names unprefixed, as kedro-mlflow does).

    Example catalog entries (``conf/base/catalog.yml``):

    .. code-block:: yaml

        scores:                         # node returns {"r2": 0.91, "mae": {"value": 0.3, "step": 1}}
          type: kedro_mlflow_starter.io.MlflowMetricsHistoryDataset
                                        # logged as "scores.r2", "scores.mae"
        training:
          type: kedro_mlflow_starter.io.MlflowMetricsHistoryDataset
          prefix: train                 # logged as "train.<name>"

    Python API (``run_id`` is an existing MLflow run; inside ``kedro run`` leave it out and
    the dataset logs into the run the hook opened):

    >>> from kedro_mlflow_starter.io import MlflowMetricsHistoryDataset
    >>> scores = MlflowMetricsHistoryDataset(prefix="test", run_id=run_id)
    >>> scores.save({"accuracy": 0.93, "f1_macro": {"value": 0.92, "step": 1}})
    >>> sorted(client.get_run(run_id).data.metrics.items())
    [('test.accuracy', 0.93), ('test.f1_macro', 0.92)]
    >>> scores.load()
    {'test.accuracy': {'value': 0.93, 'step': 0}, 'test.f1_macro': {'value': 0.92, 'step': 1}}
    """

    DEFAULT_LOAD_ARGS: ClassVar[dict[str, Any]] = {"mode": "history"}
    NAME_ARG: ClassVar[str] = "prefix"

    def __init__(self, *, prefix: str | None | EllipsisType = ..., run_id: str | None = None,
                 load_args: dict[str, Any] | None = None, save_args: dict[str, Any] | None = None,
                 metadata: dict[str, Any] | None = None) -> None:
        """``prefix`` left out (``...``) is the catalog entry name; ``None`` is no prefix."""
        super().__init__(run_id=run_id, load_args=load_args, save_args=save_args, metadata=metadata)
        self.prefix = self._entry if prefix is ... else prefix
        if self._load_args["mode"] not in ("history", "value"):
            raise DatasetError(
                f"{self._what()}: `load_args.mode` must be `history` or "
                f"`value`, got {self._load_args['mode']!r}."
            )

    @property
    def name(self) -> str | None:
        return self.prefix

    def _owns(self, key: str) -> bool:
        return key.startswith(f"{self.prefix}.") if self.prefix else True

    def save(self, data: Mapping[str, Any]) -> None:
        where = self._what()
        if not isinstance(data, Mapping):
            raise DatasetError(
                f"{where}: the data must be a dict of metrics ({{name: value}}, {{name: {{value, "
                f"step}}}} or {{name: [{{value, step}}, ...]}}); got {short(data, 80)}."
            )
        kept = {f"{self.prefix}.{name}" if self.prefix else str(name): _points(entry, f"{where}, metric '{name}'")
                for name, entry in data.items()}
        run_id = run_to_log_into(where, self.run_id)
        self._kept = kept
        if run_id is not None:
            points = [(key, point["value"], point["step"]) for key, series in kept.items() for point in series]
            log_points(f"metrics {where}", run_id, points)

    def load(self) -> dict[str, Any]:
        run_id = run_to_read(self.run_id)
        if run_id is None:
            histories = self._kept_or_fail()
        else:
            keys = sorted(key for key in current_client().get_run(run_id).data.metrics if self._owns(key))
            histories = {key: [{"value": m.value, "step": m.step} for m in history(run_id, key)] for key in keys}
        if self._load_args["mode"] == "value":
            return {key: points[-1]["value"] for key, points in histories.items()}
        return {key: points[0] if len(points) == 1 else list(points) for key, points in histories.items()}


def _points(entry: Any, where: str) -> list[dict[str, Any]]:
    """``{"value", "step"}`` points of one metric given as a number, a point, or a list of points."""
    if not isinstance(entry, (Mapping, list)):
        return [{"value": as_number(entry, where), "step": 0}]
    points = []
    for point in [entry] if isinstance(entry, Mapping) else entry:
        if not isinstance(point, Mapping) or "value" not in point:
            raise DatasetError(
                f"{where}: each point must be a dict with `value` (and `step`), got {short(point, 80)}."
            )
        points.append({"value": as_number(point["value"], where), "step": as_step(point.get("step", 0), where)})
    return points
