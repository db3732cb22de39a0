"""MlflowMetricDataset (and what the three metric datasets share) against a real SQLite store."""

from __future__ import annotations

import json

import pytest
from kedro.io import DataCatalog
from kedro.io.core import DatasetError

from kedro_mlflow_starter.framework.catalog_checks import build_mlflow_datasets
from kedro_mlflow_starter.io import MlflowMetricDataset, MlflowMetricHistoryDataset, MlflowMetricsHistoryDataset, _common
from tests.io_fixtures import PKG, Run, catalog_of, runs_in, start_run


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
    with pytest.raises(DatasetError, match=r"'accuracy' \(MlflowMetricDataset\).*must be a number.*float\(score\)"):
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
        build_mlflow_datasets(catalog)


def test_metric_without_key_outside_a_session_says_how_to_name_it(run: Run) -> None:
    with pytest.raises(DatasetError, match=r"has no `key`: set `key:`"):
        MlflowMetricDataset().save(1.0)


def test_without_any_run_metrics_keep_their_values_warn_once_and_create_no_run(
    no_run, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture  # noqa: ANN001
) -> None:
    """Issue 11 §1: the hook disabled / a notebook without a run: local behaviour, one warning."""
    monkeypatch.setattr(_common, "_warned_no_run", False)
    before = runs_in(no_run)
    catalog = DataCatalog.from_config(  # no hook: the entry names come from the catalog itself
        {
            "accuracy": {"type": PKG + "MlflowMetricDataset"},
            "loss_curve": {"type": PKG + "MlflowMetricHistoryDataset"},
            "scores": {"type": PKG + "MlflowMetricsHistoryDataset"},
        }
    )
    with caplog.at_level("WARNING", logger="kedro_mlflow_starter"):
        catalog.save("accuracy", 0.9)
        catalog.save("loss_curve", [3.0, 2.0])
        catalog.save("scores", {"a": 1.0})

    assert (catalog.load("accuracy"), catalog.load("loss_curve"), catalog.load("scores")) == (
        0.9, [3.0, 2.0], {"scores.a": {"value": 1.0, "step": 0}}
    )
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1, warnings
    assert "'accuracy' (MlflowMetricDataset)" in warnings[0]
    assert "log nothing" in warnings[0] and "Opting out" in warnings[0]
    assert len(warnings[0].split()) <= 30, "one short line; the explanation is in the docs"  # issue 21
    assert runs_in(no_run) == before


def test_loading_a_metric_never_saved_without_a_run_names_the_entry(no_run) -> None:  # noqa: ANN001
    catalog = DataCatalog.from_config({"val_accuracy": {"type": PKG + "MlflowMetricDataset"}})
    with pytest.raises(DatasetError, match=r"'val_accuracy' \(MlflowMetricDataset\) has nothing to load.*run_id:"):
        catalog.load("val_accuracy")


def test_a_run_the_user_opened_is_where_metrics_log_when_no_kedro_run_is(no_run) -> None:  # noqa: ANN001
    """kedro-mlflow's documented notebook pattern: ``with mlflow.start_run(): metric_ds.save(0.3)``."""
    import mlflow

    mlflow.set_experiment(experiment_id=no_run.experiment_id)
    before = runs_in(no_run)
    metric_ds = MlflowMetricDataset(key="my_metric")
    with mlflow.start_run() as active:
        metric_ds.save(0.3)
        assert metric_ds.load() == 0.3
    assert no_run.client.get_run(active.info.run_id).data.metrics == {"my_metric": 0.3}
    assert runs_in(no_run) == [active.info.run_id, *before]  # the user's run, nothing else


def test_metrics_are_kept_in_memory_when_tracking_is_disabled(tracking_off) -> None:  # noqa: ANN001
    before = runs_in(tracking_off)
    metric = MlflowMetricDataset(key="accuracy")
    metric.save(0.75)
    history = MlflowMetricHistoryDataset(key="loss")
    history.save([3.0, 2.0])
    several = MlflowMetricsHistoryDataset(prefix="scores")
    several.save({"a": 1.0})

    assert (metric.load(), history.load(), several.load()) == (0.75, [3.0, 2.0], {"scores.a": {"value": 1.0, "step": 0}})
    assert runs_in(tracking_off) == before


def test_metric_public_attributes_are_honoured(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    """``key`` and ``run_id`` are read and set as kedro-mlflow users do."""
    dataset = MlflowMetricDataset(key="first")
    assert (dataset.key, dataset.run_id) == ("first", None)
    dataset.key = "renamed"
    dataset.save(1.0)
    assert run.client.get_run(run.run_id).data.metrics == {"renamed": 1.0}

    start_run(run.store, monkeypatch)
    dataset.run_id = run.run_id  # read the earlier run from the new one
    assert dataset.load() == 1.0


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
    build_mlflow_datasets(catalog, names=["val_score", "train_curve", "not_ours"])
    catalog.save("val_score", 0.5)
    catalog.save("train_curve", [1.0, 0.5])

    assert run.client.get_run(run.run_id).data.metrics == {"val_score": 0.5, "curves/train": 0.5}
