"""MlflowArtifactDataset with real kedro-datasets, a real SQLite store and real files."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pandas as pd
import pytest
from kedro.io import DataCatalog
from kedro.io.core import DatasetError

from kedro_mlflow_starter.framework.catalog_checks import build_mlflow_datasets
from kedro_mlflow_starter.io import MlflowArtifactDataset, _common
from tests.io_fixtures import PKG, Run, runs_in, start_run

FRAME = pd.DataFrame({"a": [1, 2, 3], "b": [0.5, 1.5, 2.5]})


def test_csv_is_saved_locally_and_logged_then_loaded_back_from_the_run(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = tmp_path / "predictions.csv"
    dataset = MlflowArtifactDataset(
        dataset={"type": "pandas.CSVDataset", "filepath": str(local)}, artifact_path="outputs"
    )
    dataset.save(FRAME)

    assert pd.read_csv(local).equals(FRAME)
    assert run.artifacts() == ["outputs/predictions.csv"]
    pd.testing.assert_frame_equal(dataset.load(), FRAME)

    local.unlink()  # a new session elsewhere: only the run has the file
    start_run(run.store, monkeypatch)
    from_run = MlflowArtifactDataset(
        dataset={"type": "pandas.CSVDataset", "filepath": str(local)}, artifact_path="outputs", run_id=run.run_id
    )
    pd.testing.assert_frame_equal(from_run.load(), FRAME)
    assert not local.exists()  # loading from a run never writes over the local path


@pytest.mark.parametrize(
    ("definition", "data", "name"),
    [
        ({"type": "pandas.ParquetDataset"}, FRAME, "table.parquet"),
        ({"type": "pickle.PickleDataset"}, {"weights": [1, 2, 3]}, "obj.pkl"),
        ({"type": "json.JSONDataset"}, {"threshold": 0.4, "labels": ["a", "b"]}, "conf.json"),
    ],
)
def test_file_datasets_round_trip_through_the_run(run: Run, tmp_path: Path, definition, data, name) -> None:  # noqa: ANN001
    config = {**definition, "filepath": str(tmp_path / name)}
    MlflowArtifactDataset(dataset=config).save(data)
    assert run.artifacts() == [name]

    loaded = MlflowArtifactDataset(dataset=config, run_id=run.run_id).load()
    if isinstance(data, pd.DataFrame):
        pd.testing.assert_frame_equal(loaded, data)
    else:
        assert loaded == data


def test_matplotlib_figure_lands_as_a_png(run: Run, tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots()
    axes.plot([1, 2, 3], [3, 1, 2])
    catalog = DataCatalog.from_config(
        {
            "curve": {
                "type": PKG + "MlflowArtifactDataset",
                "artifact_path": "plots",
                "dataset": {"type": "matplotlib.MatplotlibDataset", "filepath": str(tmp_path / "curve.png")},
            },
            "pickled_figure": {
                "type": PKG + "MlflowArtifactDataset",
                "dataset": {"type": "pickle.PickleDataset", "filepath": str(tmp_path / "figure.pkl")},
            },
        }
    )
    build_mlflow_datasets(catalog)
    catalog.save("curve", figure)
    catalog.save("pickled_figure", figure)

    assert run.artifacts() == ["figure.pkl", "figure.png", "plots/curve.png"]
    for path in ("plots/curve.png", "figure.png"):
        local = run.client.download_artifacts(run.run_id, path, str(tmp_path / "check"))
        assert Path(local).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_versioned_dataset_logs_the_version_just_saved(run: Run, tmp_path: Path) -> None:
    config = {"type": "pickle.PickleDataset", "filepath": str(tmp_path / "model.pkl"), "versioned": True}
    MlflowArtifactDataset(dataset=config).save({"version": 1})
    second = MlflowArtifactDataset(dataset=config, artifact_path="second")
    second.save({"version": 2})

    assert len(list((tmp_path / "model.pkl").iterdir())) == 2
    assert run.artifacts() == ["model.pkl", "second/model.pkl"]
    local = run.client.download_artifacts(run.run_id, "second/model.pkl", str(tmp_path / "check"))
    assert pickle.loads(Path(local).read_bytes()) == {"version": 2}
    assert second.load() == {"version": 2}
    assert MlflowArtifactDataset(dataset=config, artifact_path="second", run_id=run.run_id).load() == {"version": 2}


def test_partitioned_dataset_logs_only_the_partitions_of_this_save(run: Run, tmp_path: Path) -> None:
    folder = tmp_path / "daily"
    (folder / "old").mkdir(parents=True)
    (folder / "old" / "2020-01-01.csv").write_text("a,b\n9,9\n")
    config = {"type": "partitions.PartitionedDataset", "path": str(folder), "dataset": "pandas.CSVDataset",
              "filename_suffix": ".csv"}
    dataset = MlflowArtifactDataset(dataset=config, artifact_path="parts")
    dataset.save({"2024-01-01": FRAME, "region/2024-01-02": FRAME.head(1)})

    assert run.artifacts() == ["parts/daily/2024-01-01.csv", "parts/daily/region/2024-01-02.csv"]
    loaded = MlflowArtifactDataset(dataset=config, artifact_path="parts", run_id=run.run_id).load()
    assert sorted(loaded) == ["2024-01-01", "region/2024-01-02"]
    pd.testing.assert_frame_equal(loaded["region/2024-01-02"](), FRAME.head(1))


@pytest.mark.parametrize(
    ("dataset", "message"),
    [
        ({"type": "pandas.NoSuchDataset", "filepath": "x.csv"}, r"wrapped dataset type 'pandas.NoSuchDataset'.*Fix `dataset: type:`"),
        ({"filepath": "x.csv"}, r"needs `dataset:` to be a dataset definition with a `type:`"),
        ({"type": "kedro.io.MemoryDataset"}, r"writes no file.*Wrap a file-based dataset"),
        ({"type": "pandas.CSVDataset", "filepath": "x.csv", "colour": "red"}, r"could not build.*colour.*Fix the arguments"),
    ],
)
def test_bad_wrapped_dataset_fails_at_catalog_creation_naming_the_entry(dataset: dict, message: str) -> None:
    catalog = DataCatalog.from_config({"report": {"type": PKG + "MlflowArtifactDataset", "dataset": dataset}})
    with pytest.raises(DatasetError, match=rf"(?s)Catalog entry 'report'.*{message}"):
        build_mlflow_datasets(catalog)


def test_without_any_run_the_wrapped_dataset_saves_and_loads_locally(
    no_run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture  # noqa: ANN001
) -> None:
    """Issue 11 §1: the hook disabled: the artifact dataset is its wrapped dataset, one warning."""
    monkeypatch.setattr(_common, "_warned_no_run", False)
    before = runs_in(no_run)
    local = tmp_path / "out.csv"
    catalog = DataCatalog.from_config(
        {"predictions": {"type": PKG + "MlflowArtifactDataset",
                         "dataset": {"type": "pandas.CSVDataset", "filepath": str(local)}}}
    )
    with caplog.at_level("WARNING", logger="kedro_mlflow_starter"):
        catalog.save("predictions", FRAME)
        catalog.save("predictions", FRAME)

    assert local.exists()
    assert catalog.load("predictions").equals(FRAME)
    [warning] = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert "'predictions' (MlflowArtifactDataset)" in warning and "log nothing" in warning
    assert runs_in(no_run) == before


def test_artifact_dataset_run_id_attribute_is_honoured(run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dataset = MlflowArtifactDataset(dataset={"type": "json.JSONDataset", "filepath": str(tmp_path / "a.json")})
    assert dataset.run_id is None
    start_run(run.store, monkeypatch)
    dataset.run_id = run.run_id  # kedro-mlflow users set it to log into a given run
    dataset.save({"x": 1})
    assert run.artifacts() == ["a.json"]


def test_explicit_run_id_wins_over_the_current_run(run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = start_run(run.store, monkeypatch)  # the current run is now `other`
    MlflowArtifactDataset(dataset={"type": "json.JSONDataset", "filepath": str(tmp_path / "a.json")},
                          run_id=run.run_id).save({"x": 1})
    assert run.artifacts() == ["a.json"]
    assert other.artifacts() == []


def test_tracking_disabled_behaves_as_the_wrapped_dataset(tracking_off, tmp_path: Path) -> None:  # noqa: ANN001
    before = runs_in(tracking_off)
    dataset = MlflowArtifactDataset(dataset={"type": "pandas.CSVDataset", "filepath": str(tmp_path / "a.csv")})
    dataset.save(FRAME)
    pd.testing.assert_frame_equal(dataset.load(), FRAME)
    assert runs_in(tracking_off) == before


def test_outage_keeps_the_local_file_and_records_the_failure(
    failure_log, tracking_server_down, tmp_path: Path  # noqa: ANN001
) -> None:
    local = tmp_path / "out.csv"

    MlflowArtifactDataset(dataset={"type": "pandas.CSVDataset", "filepath": str(local)}).save(FRAME)

    assert pd.read_csv(local).equals(FRAME)
    [entry] = [json.loads(line) for line in failure_log.read_text().splitlines()]
    assert entry["local_path"] == str(local)


def test_pickles_for_parallel_runner(tmp_path: Path) -> None:
    dataset = MlflowArtifactDataset(dataset={"type": "pandas.CSVDataset", "filepath": str(tmp_path / "a.csv")},
                                    artifact_path="x", metadata={"owner": "me"})
    copy = pickle.loads(pickle.dumps(dataset))
    assert copy._describe() == dataset._describe()
    assert copy.metadata == {"owner": "me"}
