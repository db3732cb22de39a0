"""``MlflowMetricDataset``: one number logged as an MLflow metric of the run."""

from __future__ import annotations

from typing import Any, ClassVar

from kedro.io.core import DatasetError

from kedro_mlflow_starter.io._common import run_to_log_into, run_to_read
from kedro_mlflow_starter.io._metric_base import MetricDatasetBase, as_number, as_step, history, log_points
from kedro_mlflow_starter.tracking.current import current_client


class MlflowMetricDataset(MetricDatasetBase):
    """One number logged as an MLflow metric of the run (``key``: the catalog entry name by default);
    ``save_args.mode: append`` logs it after the highest step already logged.

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
    the dataset logs into the run the hook opened):

    >>> from kedro_mlflow_starter.io import MlflowMetricDataset
    >>> r2 = MlflowMetricDataset(key="r2_score", run_id=run_id)
    >>> r2.save(0.91)
    >>> client.get_run(run_id).data.metrics["r2_score"]
    0.91
    >>> r2.load()
    0.91
    """

    DEFAULT_SAVE_ARGS: ClassVar[dict[str, Any]] = {"mode": "overwrite"}

    def __init__(self, *, key: str | None = None, run_id: str | None = None, load_args: dict[str, Any] | None = None,
                 save_args: dict[str, Any] | None = None, metadata: dict[str, Any] | None = None) -> None:
        super().__init__(run_id=run_id, load_args=load_args, save_args=save_args, metadata=metadata)
        self.key = key or self._entry
        mode = self._save_args["mode"]
        if mode not in ("overwrite", "append"):
            raise DatasetError(
                f"MlflowMetricDataset '{key}': `save_args.mode` must be `overwrite` or `append`, got {mode!r}."
            )
        for which, args in (("save_args", self._save_args), ("load_args", self._load_args)):
            if "step" in args:
                as_step(args["step"], f"MlflowMetricDataset '{key}' {which}")

    @property
    def name(self) -> str | None:
        return self.key

    def save(self, data: float) -> None:
        key = self._required_name()
        value = as_number(data, self._what())
        run_id = run_to_log_into(self._what(), self.run_id)
        self._kept = value
        if run_id is None:
            return
        step = self._save_args.get("step")
        if step is None and self._save_args["mode"] == "append":
            points = history(run_id, key)
            step = points[-1].step + 1 if points else 0
        log_points(f"metric '{key}'", run_id, [(key, value, int(step or 0))])

    def load(self) -> float:
        key = self._required_name()
        run_id = run_to_read(self.run_id)
        if run_id is None:
            return self._kept_or_fail()
        # The value logged last (whatever its step), as kedro-mlflow returns it.
        points = sorted(current_client().get_metric_history(run_id, key), key=lambda m: m.timestamp)
        if "step" in self._load_args:
            points = [m for m in points if m.step == int(self._load_args["step"])]
        if not points:
            where = f" at step {self._load_args['step']}" if "step" in self._load_args else ""
            raise DatasetError(f"MlflowMetricDataset: metric '{key}' was never logged{where} in run {run_id}.")
        return points[-1].value
