"""MlflowMetricHistoryDataset against a real SQLite store."""

from __future__ import annotations

import pytest
from kedro.io.core import DatasetError

from kedro_mlflow_starter.io import MlflowMetricHistoryDataset
from tests.io_fixtures import Run


def test_long_history_goes_out_in_batches_of_1000(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    calls: list[str] = []  # what reaches the store: MlflowClient.log_batch splits within MLflow's limits
    for method in ("log_batch", "log_metric"):
        original = getattr(SqlAlchemyStore, method)

        def spy(self, *args, _original=original, _name=method, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
            calls.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(SqlAlchemyStore, method, spy)

    values = [float(i) / 7 for i in range(10_000)]
    MlflowMetricHistoryDataset(key="curve").save(values)

    assert calls == ["log_batch"] * 10
    history = run.client.get_metric_history(run.run_id, "curve")
    assert sorted((m.step, m.value) for m in history) == list(enumerate(values))
    assert MlflowMetricHistoryDataset(key="curve").load() == values


@pytest.mark.parametrize(
    ("mode", "data"),
    [
        ("list", [0.5, 0.25, 0.125]),
        ("dict", {0: 0.5, 5: 0.25, 10: 0.125}),
        ("history", [{"step": 2, "value": 1.0, "timestamp": 1000}, {"step": 3, "value": 0.5, "timestamp": 2000}]),
    ],
)
def test_metric_history_round_trips_in_each_mode(run: Run, mode: str, data) -> None:  # noqa: ANN001
    MlflowMetricHistoryDataset(key=f"h_{mode}", save_args={"mode": mode}).save(data)
    assert MlflowMetricHistoryDataset(key=f"h_{mode}", save_args={"mode": mode}).load() == data


def test_metric_history_converts_between_modes_on_load(run: Run) -> None:
    MlflowMetricHistoryDataset(key="acc").save([0.1, 0.2])
    loaded = MlflowMetricHistoryDataset(key="acc", load_args={"mode": "dict"}).load()
    assert loaded == {0: 0.1, 1: 0.2}


def test_metric_history_wrong_shape_names_the_mode(run: Run) -> None:
    with pytest.raises(DatasetError, match=r"save_args.mode: dict.*\{step: value\} dict"):
        MlflowMetricHistoryDataset(key="acc", save_args={"mode": "dict"}).save([1.0, 2.0])
    with pytest.raises(DatasetError, match=r"must be a number"):
        MlflowMetricHistoryDataset(key="acc").save([1.0, "two"])


def test_metric_history_keeps_the_timestamps_it_was_given(run: Run) -> None:
    points = [{"step": 0, "value": 0.1, "timestamp": 1_345_545}, {"step": 1, "value": 0.2, "timestamp": 1_345_546}]
    MlflowMetricHistoryDataset(key="ts", save_args={"mode": "history"}).save(points)

    assert sorted((m.step, m.timestamp) for m in run.client.get_metric_history(run.run_id, "ts")) == [
        (0, 1_345_545), (1, 1_345_546)]
    assert MlflowMetricHistoryDataset(key="ts", save_args={"mode": "history"}).load() == points
