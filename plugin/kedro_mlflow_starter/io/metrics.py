"""The metric datasets: one value, one series, or a dict of series, logged in batches.

``key`` (``prefix`` for the dict form) defaults to the catalog entry name: the hook fills it
in when the catalog is created. Every save goes out with ``MlflowClient.log_batch`` in
chunks of at most 1,000 metrics; loads read ``get_metric_history`` back, ordered by step
then time, so what was saved is what is loaded.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from numbers import Real
from typing import Any

from kedro.io.core import AbstractDataset, DatasetError

from kedro_mlflow_starter.io._common import (
    CatalogEntryDataset,
    describe_entry,
    log_or_record,
    run_to_log_into,
    run_to_read,
    short,
)
from kedro_mlflow_starter.tracking.retries import points_not_logged
from kedro_mlflow_starter.tracking.current import current_client

MAX_METRICS_PER_BATCH = 1000

# ``prefix`` not given at all (the catalog entry name is used) vs ``prefix: null`` (no prefix).
_UNSET: Any = type("_Unset", (), {"__repr__": lambda self: "<catalog entry name>", "__reduce__": lambda self: "_UNSET"})()


def _number(value: Any, where: str) -> float:
    """``value`` as a float, or an error naming the metric and what is allowed."""
    if isinstance(value, bool) or not isinstance(value, Real):
        try:
            import numpy as np

            if isinstance(value, np.ndarray) and value.size == 1:
                value = value.item()
            elif isinstance(value, np.generic):
                value = value.item()
        except ImportError:  # pragma: no cover - numpy comes with every data stack
            pass
    if isinstance(value, bool) or not isinstance(value, Real):
        raise DatasetError(
            f"{where}: a metric value must be a number (int or float), got {short(value, 80)} of "
            f"type {type(value).__name__}. Return a number from the node, e.g. `float(score)`."
        )
    return float(value)


def _step(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise DatasetError(f"{where}: a metric step must be a whole number, got {value!r}.")
    return value


def _log_metrics(what: str, run_id: str, points: list[tuple[Any, ...]]) -> None:
    """Send (key, value, step[, timestamp]) points with ``log_batch``, 1,000 per call.

    A point's own timestamp (milliseconds, as ``history`` mode gives it) is kept; the
    others are stamped now.
    """
    from mlflow.entities import Metric

    client = current_client()
    now = int(time.time() * 1000)
    metrics = [
        Metric(point[0], point[1], int(point[3]) if len(point) > 3 and point[3] is not None else now, point[2])
        for point in points
    ]
    metrics = points_not_logged(client, run_id, metrics)  # a retried task logs no point twice
    for start in range(0, len(metrics), MAX_METRICS_PER_BATCH):
        chunk = metrics[start : start + MAX_METRICS_PER_BATCH]
        unsent = metrics[start:]  # after a failed chunk the later ones are not sent: all kept for replay
        logged = log_or_record(
            f"{what}: {short([(m.key, m.step, m.value) for m in unsent[:5]], 150)}"
            + (f" and {len(unsent) - 5} more" if len(unsent) > 5 else ""),
            None,
            lambda chunk=chunk: client.log_batch(run_id, metrics=chunk),
            replay={"kind": "metrics", "points": [[m.key, m.value, m.step, m.timestamp] for m in unsent]},
        )
        if not logged:
            break


def _history(run_id: str, key: str) -> list[Any]:
    """Every point of ``key`` in ``run_id``, ordered by step, then time (stable for ties)."""
    history = current_client().get_metric_history(run_id, key)
    return sorted(history, key=lambda metric: (metric.step, metric.timestamp))


class _MetricDatasetBase(CatalogEntryDataset, AbstractDataset[Any, Any]):
    """What the three metric datasets share: the run to use and the in-memory fallback."""

    _name_arg = "key"

    def __init__(self, run_id: str | None, load_args: dict | None, save_args: dict | None,
                 metadata: dict | None) -> None:
        self._run_id = run_id
        self._load_args = dict(load_args or {})
        self._save_args = dict(save_args or {})
        self._kept: Any = None
        self._entry: str | None = None
        self.metadata = metadata

    @property
    def _name(self) -> str | None:
        """The metric key (or prefix): the ``_name_arg`` constructor argument."""
        name = getattr(self, f"_{self._name_arg}")
        return None if name is _UNSET else name

    def _bind_catalog_name(self, name: str) -> None:
        super()._bind_catalog_name(name)
        if getattr(self, f"_{self._name_arg}") in (None, _UNSET):
            setattr(self, f"_{self._name_arg}", name)

    def _what(self) -> str:
        return describe_entry(type(self).__name__, self._entry, self._name)

    def _required_name(self) -> str:
        name = self._name
        if not name:
            raise DatasetError(
                f"{type(self).__name__} has no `{self._name_arg}`: set `{self._name_arg}:` in its "
                "catalog entry, or use it through a Kedro session with kedro-mlflow-starter "
                f"installed (the catalog entry name becomes the {self._name_arg})."
            )
        return name

    def _run_to_read(self) -> str | None:
        return run_to_read(self._run_id)

    def _read_run(self) -> str:
        run_id = self._run_to_read()
        if run_id is None:
            raise DatasetError(
                f"{self._what()} has no run to load from: set `run_id:` in "
                "its catalog entry, or load it inside `kedro run`."
            )
        return run_id

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
        return {
            self._name_arg: self._name,
            "run_id": self._run_id or "<current kedro run>",
            "save_args": self._save_args,
            "load_args": self._load_args,
        }

    def _exists(self) -> bool:
        if self._kept is not None:
            return True
        run_id = self._run_to_read()
        if run_id is None or not self._name:
            return False
        metrics = current_client().get_run(run_id).data.metrics
        return any(self._owns(key) for key in metrics)

    def _owns(self, key: str) -> bool:
        return key == self._name


class _KeyedMetricDataset(_MetricDatasetBase):
    @property
    def key(self) -> str | None:
        """The metric's name in MLflow."""
        return self._name

    @key.setter
    def key(self, key: str) -> None:
        self._key = key


class MlflowMetricDataset(_KeyedMetricDataset):
    """One number logged as an MLflow metric of the run.

    ``save_args.mode``: ``overwrite`` (default) logs the value at ``save_args.step`` (0 by
    default), so the run shows it as the metric's value; ``append`` adds it after the
    highest step already logged, building a history across saves. Load returns the value
    at ``load_args.step`` if given, else the value logged last (whatever its step).

    Example catalog entries (``conf/base/catalog.yml``):

    .. code-block:: yaml

        r2_score:                      # logged as metric "r2_score"
          type: kedro_mlflow_starter.io.MlflowMetricDataset

        epoch_loss:
          type: kedro_mlflow_starter.io.MlflowMetricDataset
          key: loss
          save_args:
            mode: append

        baseline_r2:                   # read a metric from an earlier run
          type: kedro_mlflow_starter.io.MlflowMetricDataset
          key: r2_score
          run_id: 0123456789abcdef0123456789abcdef

    Python API (``run_id`` is an existing MLflow run; inside ``kedro run`` leave it out and
    the dataset logs into the run the hook opened; ``tmp_path`` is a scratch folder):

    >>> from kedro_mlflow_starter.io import MlflowMetricDataset
    >>> r2 = MlflowMetricDataset(key="r2_score", run_id=run_id)
    >>> r2.save(0.91)
    >>> client.get_run(run_id).data.metrics["r2_score"]
    0.91
    >>> r2.load()
    0.91
    """

    def __init__(
        self,
        key: str | None = None,
        run_id: str | None = None,
        load_args: dict[str, Any] | None = None,
        save_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Check the arguments.

        Args:
            key: The metric's name; the catalog entry name by default.
            run_id: Log into and load from this run instead of the current ``kedro run``'s.
            load_args: ``step``: load the value logged at this step.
            save_args: ``mode`` (``overwrite`` | ``append``) and ``step``.
            metadata: Free-form information kept on the dataset, not used by it.
        """
        super().__init__(run_id, load_args, save_args, metadata)
        self._key = key
        self._bind_entry_now()
        mode = self._save_args.get("mode", "overwrite")
        if mode not in ("overwrite", "append"):
            raise DatasetError(
                f"MlflowMetricDataset '{key}': `save_args.mode` must be `overwrite` or `append`, got {mode!r}."
            )
        if "step" in self._save_args:
            _step(self._save_args["step"], f"MlflowMetricDataset '{key}' save_args")
        if "step" in self._load_args:
            _step(self._load_args["step"], f"MlflowMetricDataset '{key}' load_args")

    def save(self, data: float) -> None:
        key = self._required_name()
        value = _number(data, self._what())
        run_id = run_to_log_into(self._what(), self._run_id)
        self._kept = value
        if run_id is None:
            return
        step = self._save_args.get("step")
        if self._save_args.get("mode", "overwrite") == "append":
            if step is None:
                history = _history(run_id, key)
                step = history[-1].step + 1 if history else 0
        _log_metrics(f"metric '{key}'", run_id, [(key, value, int(step or 0))])

    def load(self) -> float:
        key = self._required_name()
        if self._run_to_read() is None:
            return self._kept_or_fail()
        # The value logged last (whatever its step), as kedro-mlflow returns it: MLflow gives
        # the history in the order it was logged; the timestamp orders points of other clients.
        history = sorted(current_client().get_metric_history(self._read_run(), key),
                         key=lambda metric: metric.timestamp)
        if "step" in self._load_args:
            history = [m for m in history if m.step == int(self._load_args["step"])]
        if not history:
            where = f" at step {self._load_args['step']}" if "step" in self._load_args else ""
            raise DatasetError(f"MlflowMetricDataset: metric '{key}' was never logged{where} in run {self._read_run()}.")
        return history[-1].value


class MlflowMetricHistoryDataset(_KeyedMetricDataset):
    """A series of values of one metric, sent in batches of 1,000 points.

    The series can be given (``save_args.mode``) and read back (``load_args.mode``, same as
    the save mode by default) as:

    - ``list``: ``[v0, v1, ...]``, logged at steps 0, 1, ...;
    - ``dict``: ``{step: value}``;
    - ``history``: ``[{"step": s, "value": v, "timestamp": t}, ...]`` (``timestamp`` in
      milliseconds, optional when saving: kept when given, now otherwise).

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
    the dataset logs into the run the hook opened; ``tmp_path`` is a scratch folder):

    >>> from kedro_mlflow_starter.io import MlflowMetricHistoryDataset
    >>> curve = MlflowMetricHistoryDataset(key="loss", run_id=run_id)
    >>> curve.save([0.9, 0.5, 0.3])
    >>> [(point.step, point.value) for point in client.get_metric_history(run_id, "loss")]
    [(0, 0.9), (1, 0.5), (2, 0.3)]
    >>> curve.load()
    [0.9, 0.5, 0.3]
    """

    MODES = ("list", "dict", "history")

    def __init__(
        self,
        key: str | None = None,
        run_id: str | None = None,
        load_args: dict[str, Any] | None = None,
        save_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Check the arguments.

        Args:
            key: The metric's name; the catalog entry name by default.
            run_id: Log into and load from this run instead of the current ``kedro run``'s.
            load_args: ``mode``: the shape load returns (the save mode by default).
            save_args: ``mode``: the shape of the saved data (``list`` by default).
            metadata: Free-form information kept on the dataset, not used by it.
        """
        super().__init__(run_id, load_args, save_args, metadata)
        self._key = key
        self._bind_entry_now()
        self._save_args.setdefault("mode", "list")
        self._load_args.setdefault("mode", self._save_args["mode"])
        for which, args in (("save_args", self._save_args), ("load_args", self._load_args)):
            if args["mode"] not in self.MODES:
                raise DatasetError(
                    f"MlflowMetricHistoryDataset '{key}': `{which}.mode` must be one of "
                    f"{', '.join(self.MODES)}; got {args['mode']!r}."
                )

    def save(self, data: Any) -> None:
        key = self._required_name()
        points = self._points(key, data)
        run_id = run_to_log_into(self._what(), self._run_id)
        now = int(time.time() * 1000)
        self._kept = [(point[2], point[1], point[3] if point[3] is not None else now) for point in points]
        if run_id is not None:
            _log_metrics(f"metric history '{key}'", run_id, points)

    def load(self) -> Any:
        key = self._required_name()
        if self._run_to_read() is None:
            triples = self._kept_or_fail()
        else:
            triples = [(m.step, m.value, m.timestamp) for m in _history(self._read_run(), key)]
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
                return [(key, _number(value, where), step, None) for step, value in enumerate(data)]
            if mode == "dict":
                return [(key, _number(value, where), _step(step, where), None) for step, value in dict(data).items()]
            return [
                (key, _number(point["value"], where), _step(point["step"], where),
                 _step(point["timestamp"], where) if point.get("timestamp") is not None else None)
                for point in data
            ]
        except (TypeError, KeyError, ValueError) as error:
            shapes = {"list": "a list of numbers", "dict": "a {step: value} dict",
                      "history": 'a list of {"step": int, "value": number} dicts'}
            raise DatasetError(
                f"{where}: with `save_args.mode: {mode}` the data must be {shapes[mode]}; got "
                f"{short(data, 80)}. Change the node's output or `save_args.mode`."
            ) from error


class MlflowMetricsHistoryDataset(_MetricDatasetBase):
    """Several metrics at once, each logged as ``<prefix>.<name>``, in batches.

    Save accepts, per metric name, a number (logged at step 0), ``{"value": v, "step": s}``,
    or a list of those dicts (a history). Load returns the dataset's metrics under their
    MLflow keys (``<prefix>.<name>``), each in the shape a node returns it: one point as
    ``{"value": v, "step": s}``, several as a list of them (``load_args.mode: history``, the
    default), or ``{key: last value}`` (``load_args.mode: value``).

    ``prefix`` defaults to the catalog entry name; ``prefix: null`` logs the names as they
    are (no prefix), as kedro-mlflow does; a dataset built in Python without ``prefix`` is
    unprefixed too.

    Example catalog entries (``conf/base/catalog.yml``):

    .. code-block:: yaml

        scores:                         # node returns {"r2": 0.91, "mae": {"value": 0.3, "step": 1}}
          type: kedro_mlflow_starter.io.MlflowMetricsHistoryDataset
                                        # logged as "scores.r2", "scores.mae"
        training:
          type: kedro_mlflow_starter.io.MlflowMetricsHistoryDataset
          prefix: train                 # logged as "train.<name>"

    Python API (``run_id`` is an existing MLflow run; inside ``kedro run`` leave it out and
    the dataset logs into the run the hook opened; ``tmp_path`` is a scratch folder):

    >>> from kedro_mlflow_starter.io import MlflowMetricsHistoryDataset
    >>> scores = MlflowMetricsHistoryDataset(prefix="test", run_id=run_id)
    >>> scores.save({"accuracy": 0.93, "f1_macro": {"value": 0.92, "step": 1}})
    >>> sorted(client.get_run(run_id).data.metrics.items())
    [('test.accuracy', 0.93), ('test.f1_macro', 0.92)]
    >>> scores.load()
    {'test.accuracy': {'value': 0.93, 'step': 0}, 'test.f1_macro': {'value': 0.92, 'step': 1}}
    """

    _name_arg = "prefix"
    LOAD_MODES = ("history", "value")

    def __init__(
        self,
        prefix: str | None = _UNSET,
        run_id: str | None = None,
        load_args: dict[str, Any] | None = None,
        save_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Check the arguments.

        Args:
            prefix: Prefix of the metric names; the catalog entry name by default; None for
                no prefix.
            run_id: Log into and load from this run instead of the current ``kedro run``'s.
            load_args: ``mode``: ``history`` (default) or ``value``.
            save_args: Unused; kept for symmetry with the other metric datasets.
            metadata: Free-form information kept on the dataset, not used by it.
        """
        super().__init__(run_id, load_args, save_args, metadata)
        self._prefix = prefix
        self._bind_entry_now()
        self._load_args.setdefault("mode", "history")
        if self._load_args["mode"] not in self.LOAD_MODES:
            raise DatasetError(
                f"{self._what()}: `load_args.mode` must be `history` or "
                f"`value`, got {self._load_args['mode']!r}."
            )

    def _bind_catalog_name(self, name: str) -> None:
        CatalogEntryDataset._bind_catalog_name(self, name)
        if self._prefix is _UNSET:  # `prefix: null` stays unprefixed
            self._prefix = name

    @property
    def prefix(self) -> str | None:
        """The prefix of the metric names (None: no prefix)."""
        return self._name

    @prefix.setter
    def prefix(self, prefix: str | None) -> None:
        self._prefix = prefix

    def _full_key(self, name: str) -> str:
        prefix = self._name
        return f"{prefix}.{name}" if prefix else name

    def _owns(self, key: str) -> bool:
        prefix = self._name
        return key.startswith(f"{prefix}.") if prefix else True

    def save(self, data: Mapping[str, Any]) -> None:
        where = self._what()
        if not isinstance(data, Mapping):
            raise DatasetError(
                f"{where}: the data must be a dict of metrics ({{name: value}}, {{name: {{value, "
                f"step}}}} or {{name: [{{value, step}}, ...]}}); got {short(data, 80)}."
            )
        points: list[tuple[str, float, int]] = []
        kept: dict[str, list[dict[str, Any]]] = {}
        for name, entry in data.items():
            key = self._full_key(str(name))
            pairs = _entries(entry, f"{where}, metric '{name}'")
            points += [(key, value, step) for value, step in pairs]
            kept[key] = [{"value": value, "step": step} for value, step in pairs]
        run_id = run_to_log_into(where, self._run_id)
        self._kept = kept
        if run_id is not None:
            _log_metrics(f"metrics {where}", run_id, points)

    def load(self) -> dict[str, Any]:
        if self._run_to_read() is None:
            histories = self._kept_or_fail()
        else:
            run_id = self._read_run()
            keys = [key for key in current_client().get_run(run_id).data.metrics if self._owns(key)]
            histories = {
                key: [{"value": m.value, "step": m.step} for m in _history(run_id, key)] for key in sorted(keys)
            }
        if self._load_args["mode"] == "value":
            return {key: points[-1]["value"] for key, points in histories.items()}
        return {key: points[0] if len(points) == 1 else list(points) for key, points in histories.items()}


def _entries(entry: Any, where: str) -> list[tuple[float, int]]:
    """(value, step) pairs of one metric given as a number, a point, or a list of points."""
    if isinstance(entry, Mapping):
        entry = [entry]
    elif not isinstance(entry, list):
        return [(_number(entry, where), 0)]
    pairs = []
    for point in entry:
        if not isinstance(point, Mapping) or "value" not in point:
            raise DatasetError(
                f"{where}: each point must be a dict with `value` (and `step`), got {short(point, 80)}."
            )
        pairs.append((_number(point["value"], where), _step(point.get("step", 0), where)))
    return pairs
