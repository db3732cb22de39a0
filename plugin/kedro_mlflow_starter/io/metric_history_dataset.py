"""``MlflowMetricHistoryDataset``: a series of values of one metric."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from kedro.io.core import DatasetError

from kedro_mlflow_starter.io._common import run_to_log_into, run_to_read, short
from kedro_mlflow_starter.io._metric_base import MetricDatasetBase, as_number, as_step, history, log_points

_SHAPES = {"list": "a list of numbers", "dict": "a {step: value} dict",
           "history": 'a list of {"step": int, "value": number} dicts'}


class MlflowMetricHistoryDataset(MetricDatasetBase):
    """A series of values of one metric (``key``: the catalog entry name by default), given and read
    back as ``list``, ``dict`` (``{step: value}``) or ``history`` (``save_args.mode``, ``load_args.mode``).

    Example catalog entries (``conf/base/catalog.yml``):

    .. code-block:: yaml

        learning_curve:                 # logged as metric "learning_curve", steps 0..n-1
          type: kedro_mlflow_starter.io.MlflowMetricHistoryDataset

        val_loss:
          type: kedro_mlflow_starter.io.MlflowMetricHistoryDataset
          key: loss/validation
          save_args:
            mode: dict                  # {epoch: loss}

    Python API (``run_id`` is an existing MLflow run; inside ``kedro run`` leave it out and
    the dataset logs into the run the hook opened):

    >>> from kedro_mlflow_starter.io import MlflowMetricHistoryDataset
    >>> curve = MlflowMetricHistoryDataset(key="loss", run_id=run_id)
    >>> curve.save([0.9, 0.5, 0.3])
    >>> [(point.step, point.value) for point in client.get_metric_history(run_id, "loss")]
    [(0, 0.9), (1, 0.5), (2, 0.3)]
    >>> curve.load()
    [0.9, 0.5, 0.3]
    """

    DEFAULT_SAVE_ARGS: ClassVar[dict[str, Any]] = {"mode": "list"}

    def __init__(self, *, key: str | None = None, run_id: str | None = None, load_args: dict[str, Any] | None = None,
                 save_args: dict[str, Any] | None = None, metadata: dict[str, Any] | None = None) -> None:
        super().__init__(run_id=run_id, load_args=load_args, save_args=save_args, metadata=metadata)
        self.key = key or self._entry
        self._load_args.setdefault("mode", self._save_args["mode"])
        for which, args in (("save_args", self._save_args), ("load_args", self._load_args)):
            if args["mode"] not in _SHAPES:
                raise DatasetError(
                    f"MlflowMetricHistoryDataset '{key}': `{which}.mode` must be one of "
                    f"{', '.join(_SHAPES)}; got {args['mode']!r}."
                )

    @property
    def name(self) -> str | None:
        return self.key

    def save(self, data: Any) -> None:
        key = self._required_name()
        points = self._points(key, data)
        run_id = run_to_log_into(self._what(), self.run_id)
        now = int(time.time() * 1000)
        self._kept = [(step, value, now if timestamp is None else timestamp) for _, value, step, timestamp in points]
        if run_id is not None:
            log_points(f"metric history '{key}'", run_id, points)

    def load(self) -> Any:
        key = self._required_name()
        run_id = run_to_read(self.run_id)
        if run_id is None:
            triples = self._kept_or_fail()
        else:
            triples = [(m.step, m.value, m.timestamp) for m in history(run_id, key)]
        mode = self._load_args["mode"]
        if mode == "list":
            return [value for _, value, _ in triples]
        if mode == "dict":
            return {step: value for step, value, _ in triples}
        return [{"step": step, "value": value, "timestamp": timestamp} for step, value, timestamp in triples]

    def _points(self, key: str, data: Any) -> list[tuple[str, float, int, int | None]]:
        where = self._what()
        mode = self._save_args["mode"]
        try:
            if mode == "list":
                if isinstance(data, (Mapping, str, bytes)) or not isinstance(data, Iterable):
                    raise TypeError
                return [(key, as_number(value, where), step, None) for step, value in enumerate(data)]
            if mode == "dict":
                return [(key, as_number(value, where), as_step(step, where), None) for step, value in dict(data).items()]
            return [
                (key, as_number(point["value"], where), as_step(point["step"], where),
                 as_step(point["timestamp"], where) if point.get("timestamp") is not None else None)
                for point in data
            ]
        except (TypeError, KeyError, ValueError) as error:
            raise DatasetError(
                f"{where}: with `save_args.mode: {mode}` the data must be {_SHAPES[mode]}; got "
                f"{short(data, 80)}. Change the node's output or `save_args.mode`."
            ) from error
