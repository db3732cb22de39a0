"""The metric datasets against a real SQLite store, inside a run set up as the hook does."""

from __future__ import annotations

import json

import pytest
from kedro.io import DataCatalog
from kedro.io.core import DatasetError

from kedro_mlflow_starter.io import MlflowMetricDataset, MlflowMetricHistoryDataset, MlflowMetricsHistoryDataset
from kedro_mlflow_starter.framework.catalog_checks import bind_mlflow_datasets
from kedro_mlflow_starter.tracking.current import NoActiveRunError
from tests.io_fixtures import Run, runs_in, start_run

PKG = "kedro_mlflow_starter.io."


def catalog_of(entries: dict) -> DataCatalog:
    catalog = DataCatalog.from_config(entries)
    bind_mlflow_datasets(catalog)
    return catalog


def test_metric_key_defaults_to_entry_name_and_round_trips(run: Run) -> None:
    catalog = catalog_of({"r2_score": {"type": PKG + "MlflowMetricDataset"}})
    catalog.save("r2_score", 0.875)

    assert run.client.get_run(run.run_id).data.metrics == {"r2_score": 0.875}
    assert catalog.load("r2_score") == 0.875
    assert "r2_score" in str(catalog["r2_score"])


def test_metric_loads_from_an_earlier_run_by_run_id(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    MlflowMetricDataset(key="accuracy").save(0.5)
    start_run(run.store, monkeypatch)  # a later session with its own run

    assert MlflowMetricDataset(key="accuracy", run_id=run.run_id).load() == 0.5
    with pytest.raises(DatasetError, match="never logged"):
        MlflowMetricDataset(key="accuracy").load()


def test_metric_append_builds_a_history_and_load_picks_last_or_step(run: Run) -> None:
    dataset = MlflowMetricDataset(key="loss", save_args={"mode": "append"})
    for value in (3.0, 2.0, 1.5):
        dataset.save(value)

    history = run.client.get_metric_history(run.run_id, "loss")
    assert sorted((m.step, m.value) for m in history) == [(0, 3.0), (1, 2.0), (2, 1.5)]
    assert dataset.load() == 1.5
    assert MlflowMetricDataset(key="loss", load_args={"step": 1}).load() == 2.0


def test_metric_overwrite_at_a_step(run: Run) -> None:
    MlflowMetricDataset(key="f1", save_args={"step": 4}).save(0.25)
    assert [(m.step, m.value) for m in run.client.get_metric_history(run.run_id, "f1")] == [(4, 0.25)]


def test_metric_value_that_is_not_a_number_is_refused_by_name(run: Run) -> None:
    catalog = catalog_of({"accuracy": {"type": PKG + "MlflowMetricDataset"}})
    with pytest.raises(DatasetError, match=r"MlflowMetricDataset 'accuracy'.*must be a number.*float\(score\)"):
        catalog.save("accuracy", "0.9")
    assert run.client.get_run(run.run_id).data.metrics == {}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"save_args": {"mode": "replace"}}, "`save_args.mode` must be `overwrite` or `append`"),
        ({"save_args": {"step": "last"}}, "step must be a whole number"),
    ],
)
def test_bad_metric_definitions_fail_at_catalog_creation(args: dict, message: str) -> None:
    catalog = DataCatalog.from_config({"score": {"type": PKG + "MlflowMetricDataset", **args}})
    with pytest.raises(DatasetError, match=rf"(?s)Catalog entry 'score'.*{message}"):
        bind_mlflow_datasets(catalog)


def test_metric_without_key_outside_a_session_says_how_to_name_it(run: Run) -> None:
    with pytest.raises(DatasetError, match=r"has no `key`: set `key:`"):
        MlflowMetricDataset().save(1.0)


def test_saving_without_any_run_explains_and_creates_no_run(no_run) -> None:  # noqa: ANN001
    before = runs_in(no_run)
    with pytest.raises(NoActiveRunError, match=r"no MLflow run to log into.*kedro run.*run_id"):
        MlflowMetricDataset(key="accuracy").save(0.9)
    with pytest.raises(DatasetError, match="no MLflow run"):
        MlflowMetricsHistoryDataset(prefix="scores").save({"a": 1.0})
    assert runs_in(no_run) == before


def test_metrics_are_kept_in_memory_when_tracking_is_disabled(tracking_off) -> None:  # noqa: ANN001
    before = runs_in(tracking_off)
    metric = MlflowMetricDataset(key="accuracy")
    metric.save(0.75)
    history = MlflowMetricHistoryDataset(key="loss")
    history.save([3.0, 2.0])
    several = MlflowMetricsHistoryDataset(prefix="scores")
    several.save({"a": 1.0})

    assert (metric.load(), history.load(), several.load()) == (0.75, [3.0, 2.0], {"a": [{"value": 1.0, "step": 0}]})
    assert runs_in(tracking_off) == before


def test_long_history_goes_out_in_batches_of_1000(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow import MlflowClient

    calls: list[str] = []
    for method in ("log_batch", "log_metric"):
        original = getattr(MlflowClient, method)

        def spy(self, *args, _original=original, _name=method, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
            calls.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(MlflowClient, method, spy)

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
        ("history", [{"step": 2, "value": 1.0}, {"step": 3, "value": 0.5}]),
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


def test_metrics_history_accepts_all_three_forms_under_the_entry_prefix(run: Run) -> None:
    catalog = catalog_of({"scores": {"type": PKG + "MlflowMetricsHistoryDataset"}})
    catalog.save(
        "scores",
        {"r2": 0.9, "mae": {"value": 0.3, "step": 2}, "loss": [{"value": 2.0, "step": 0}, {"value": 1.0, "step": 1}]},
    )

    assert run.client.get_run(run.run_id).data.metrics == {"scores.r2": 0.9, "scores.mae": 0.3, "scores.loss": 1.0}
    assert catalog.load("scores") == {
        "loss": [{"value": 2.0, "step": 0}, {"value": 1.0, "step": 1}],
        "mae": [{"value": 0.3, "step": 2}],
        "r2": [{"value": 0.9, "step": 0}],
    }
    last = MlflowMetricsHistoryDataset(prefix="scores", run_id=run.run_id, load_args={"mode": "value"}).load()
    assert last == {"loss": 1.0, "mae": 0.3, "r2": 0.9}


def test_metric_logging_outage_is_recorded_not_raised(failure_log, tracking_server_down) -> None:  # noqa: ANN001

    MlflowMetricDataset(key="accuracy").save(0.9)

    [entry] = [json.loads(line) for line in failure_log.read_text().splitlines()]
    assert "accuracy" in entry["what"] and "0.9" in entry["what"]
    assert entry["local_path"] is None


def test_dataset_factory_entries_are_bound_when_their_names_are_given(run: Run) -> None:
    catalog = DataCatalog.from_config(
        {
            "{name}_score": {"type": PKG + "MlflowMetricDataset"},
            "{name}_curve": {"type": PKG + "MlflowMetricHistoryDataset", "key": "curves/{name}"},
        }
    )
    bind_mlflow_datasets(catalog, names=["val_score", "train_curve", "not_ours"])
    catalog.save("val_score", 0.5)
    catalog.save("train_curve", [1.0, 0.5])

    assert run.client.get_run(run.run_id).data.metrics == {"val_score": 0.5, "curves/train": 0.5}
