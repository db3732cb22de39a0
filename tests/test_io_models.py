"""The model datasets with real scikit-learn models, a real SQLite store and fresh interpreters."""

from __future__ import annotations

import os
import shutil
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from kedro.io import DataCatalog
from kedro.io.core import DatasetError

from kedro_mlflow_starter.io import (
    MlflowModelLocalFileSystemDataset,
    MlflowModelRegistryDataset,
    MlflowModelTrackingDataset,
)
from kedro_mlflow_starter.framework.catalog_checks import bind_mlflow_datasets
from kedro_mlflow_starter.io import _common
from tests.io_fixtures import Run, Store, runs_in, start_run
from tests.project_factory import script_result

PKG = "kedro_mlflow_starter.io."
X = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 1.0], [3.0, 5.0]])
Y = np.array([1.0, 2.0, 4.0, 9.0])


def regressor(scale: float = 1.0):  # noqa: ANN201
    from sklearn.linear_model import LinearRegression

    return LinearRegression().fit(X, Y * scale)


def predict_in_fresh_interpreter(model_uri: str, tracking_uri: str | None = None) -> list[float]:
    """Load ``model_uri`` with pyfunc in a new Python process, as a serving user would."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "KEDRO_MLFLOW_"))}
    if tracking_uri:
        env["MLFLOW_TRACKING_URI"] = tracking_uri
    result = script_result("predict_with_model", {"input": {"array": X.tolist()},
                                                  "predictions": {"y": {"model_uri": model_uri}}},
                           env=env, timeout=120)
    return [float(v) for v in result["predictions"]["y"]["values"]]


def test_tracking_dataset_logs_a_logged_model_linked_to_the_run(run: Run) -> None:
    import mlflow

    catalog = DataCatalog.from_config(
        {"regressor": {"type": PKG + "MlflowModelTrackingDataset", "flavor": "mlflow.sklearn"}}
    )
    bind_mlflow_datasets(catalog)
    model = regressor()
    catalog.save("regressor", model)

    [logged] = run.logged_models()
    assert logged.name == "regressor"
    assert str(logged.status) in ("READY", "LoggedModelStatus.READY")
    assert logged.source_run_id == run.run_id
    assert [o.model_id for o in run.client.get_run(run.run_id).outputs.model_outputs] == [logged.model_id]
    searched = mlflow.search_logged_models(experiment_ids=[run.store.experiment_id], output_format="list")
    assert logged.model_id in [m.model_id for m in searched]
    assert catalog["regressor"].model_id == logged.model_id

    requirements = Path(mlflow.artifacts.download_artifacts(f"{logged.artifact_location}/requirements.txt"))
    pins = requirements.read_text().split()
    assert any(p.startswith("scikit-learn==") for p in pins) and any(p.startswith("mlflow==") for p in pins)

    np.testing.assert_allclose(catalog.load("regressor").predict(X), model.predict(X))
    by_run_uri = MlflowModelTrackingDataset(
        flavor="mlflow.sklearn", load_args={"model_uri": f"runs:/{run.run_id}/regressor"}
    )
    np.testing.assert_allclose(by_run_uri.load().predict(X), model.predict(X))
    np.testing.assert_allclose(
        predict_in_fresh_interpreter(f"models:/{logged.model_id}", run.store.tracking_uri), model.predict(X)
    )


def test_tracking_dataset_loads_the_last_model_of_a_run_from_a_new_session(
    run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = regressor(1.0), regressor(2.0)
    MlflowModelTrackingDataset(flavor="mlflow.sklearn", save_args={"name": "reg"}).save(first)
    MlflowModelTrackingDataset(flavor="mlflow.sklearn", save_args={"name": "reg"}).save(second)
    start_run(run.store, monkeypatch)

    loaded = MlflowModelTrackingDataset(flavor="mlflow.sklearn", run_id=run.run_id, save_args={"name": "reg"}).load()
    np.testing.assert_allclose(loaded.predict(X), second.predict(X))
    with pytest.raises(DatasetError, match="has no logged model named 'reg'"):
        MlflowModelTrackingDataset(flavor="mlflow.sklearn", save_args={"name": "reg"}).load()


def test_registration_and_registry_dataset(run: Run) -> None:
    model = regressor(3.0)
    MlflowModelTrackingDataset(
        flavor="mlflow.sklearn", save_args={"name": "reg", "registered_model_name": "io-test-reg"}
    ).save(model)
    run.client.set_registered_model_alias("io-test-reg", "champion", "1")

    by_alias = MlflowModelRegistryDataset(model_name="io-test-reg", alias="champion")
    np.testing.assert_allclose(by_alias.load().predict(X), model.predict(X))
    by_version = MlflowModelRegistryDataset(model_name="io-test-reg", model_version=1, flavor="mlflow.sklearn")
    np.testing.assert_allclose(by_version.load().predict(X), model.predict(X))
    uri = MlflowModelTrackingDataset(flavor="mlflow.sklearn", load_args={"model_uri": "models:/io-test-reg@champion"})
    np.testing.assert_allclose(uri.load().predict(X), model.predict(X))

    with pytest.raises(DatasetError, match=r"no registered model named 'no-such-model'.*registered_model_name"):
        MlflowModelRegistryDataset(model_name="no-such-model").load()
    with pytest.raises(DatasetError, match=r"'io-test-reg' has no alias 'staging'.*set_registered_model_alias"):
        MlflowModelRegistryDataset(model_name="io-test-reg", alias="staging").load()
    with pytest.raises(DatasetError, match=r"read-only.*registered_model_name: io-test-reg"):
        by_alias.save(model)


def test_pyfunc_python_model_round_trip(run: Run) -> None:
    import mlflow.pyfunc

    class Doubler(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input: list[float], params=None) -> list[float]:  # noqa: ANN001
            return [2 * v for v in model_input]

    dataset = MlflowModelTrackingDataset(flavor="mlflow.pyfunc", pyfunc_workflow="python_model",
                                         save_args={"name": "doubler"})
    dataset.save(Doubler())
    assert dataset.load().predict([1.0, 2.5]) == [2.0, 5.0]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"flavor": "mlflow.no_such_flavor"}, r"unknown flavor 'mlflow.no_such_flavor'.*Set `flavor:`"),
        ({"flavor": "mlflow.pyfunc"}, r"`mlflow.pyfunc` needs `pyfunc_workflow:` set to `python_model`"),
        ({"flavor": "mlflow.pyfunc", "pyfunc_workflow": "loader_module"}, r"needs `save_args: \{loader_module"),
        ({"flavor": "mlflow.sklearn", "pyfunc_workflow": "python_model"}, r"only applies to `flavor: mlflow.pyfunc`"),
    ],
)
@pytest.mark.parametrize("dataset_type", ["MlflowModelTrackingDataset", "MlflowModelLocalFileSystemDataset"])
def test_bad_model_definitions_fail_at_catalog_creation(dataset_type: str, entry: dict, message: str) -> None:
    if dataset_type == "MlflowModelLocalFileSystemDataset":
        entry = {**entry, "filepath": "data/06_models/m"}
    catalog = DataCatalog.from_config({"clf": {"type": PKG + dataset_type, **entry}})
    with pytest.raises(DatasetError, match=rf"(?s)Catalog entry 'clf'.*{message}"):
        bind_mlflow_datasets(catalog)
    assert "mlflow.no_such_flavor" not in sys.modules


@pytest.mark.parametrize("version_key", ["version", "model_version"])
def test_registry_with_alias_and_version_fails_at_catalog_creation(version_key: str) -> None:
    catalog = DataCatalog.from_config(
        {"champion": {"type": PKG + "MlflowModelRegistryDataset", "model_name": "m", "alias": "a", version_key: 2}}
    )
    with pytest.raises(DatasetError, match=r"(?s)Catalog entry 'champion'.*either `alias:` or `model_version:`, not both"):
        bind_mlflow_datasets(catalog)


def test_registry_version_key_in_the_catalog_is_kept() -> None:
    catalog = DataCatalog.from_config(
        {"pinned": {"type": PKG + "MlflowModelRegistryDataset", "model_name": "m", "version": 4}}
    )
    bind_mlflow_datasets(catalog)
    assert catalog["pinned"].model_uri == "models:/m/4"


def test_without_any_run_the_model_is_kept_for_downstream_nodes_and_nothing_is_created(
    no_run: Store, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 11 §1: the hook disabled: the model stays in memory, the warning names the entry."""
    monkeypatch.setattr(_common, "_warned_no_run", False)
    before = runs_in(no_run)
    catalog = DataCatalog.from_config({"sklearn_model": {"type": PKG + "MlflowModelTrackingDataset",
                                                         "flavor": "mlflow.sklearn"}})
    model = regressor()
    with caplog.at_level("WARNING", logger="kedro_mlflow_starter"):
        catalog.save("sklearn_model", model)
    assert catalog.load("sklearn_model") is model
    [warning] = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert "'sklearn_model' (MlflowModelTrackingDataset)" in warning and "'model'" not in warning
    assert runs_in(no_run) == before


def test_a_model_dataset_never_saved_without_a_run_names_the_entry(no_run: Store) -> None:
    catalog = DataCatalog.from_config({"sklearn_model": {"type": PKG + "MlflowModelTrackingDataset",
                                                         "flavor": "mlflow.sklearn"}})
    with pytest.raises(DatasetError, match=r"'sklearn_model' \(MlflowModelTrackingDataset\) has nothing to load"):
        catalog.load("sklearn_model")


def test_model_tracking_artifact_path_is_mapped_to_name_with_a_warning(run: Run) -> None:
    """Issue 12 item 6: kedro-mlflow's ``artifact_path`` (MLflow 2) becomes MLflow 3's ``name``."""
    with pytest.warns(FutureWarning, match=r"artifact_path: clf.*MLflow 3 calls it `name`"):
        dataset = MlflowModelTrackingDataset(flavor="mlflow.sklearn", artifact_path="clf")
    dataset.save(regressor())
    [logged] = run.logged_models()
    assert logged.name == "clf"
    assert dataset.model_uri == f"models:/{logged.model_id}"
    assert MlflowModelTrackingDataset(flavor="mlflow.sklearn", load_args={"model_uri": dataset.model_uri}).load() is not None


def test_registry_dataset_accepts_kedro_mlflow_arguments() -> None:
    """Issue 12 item 6: ``stage_or_version`` and ``pyfunc_workflow`` as kedro-mlflow documents them."""
    catalog = DataCatalog.from_config(
        {
            "by_number": {"type": PKG + "MlflowModelRegistryDataset", "model_name": "m", "stage_or_version": 3,
                          "pyfunc_workflow": "python_model"},
            "newest": {"type": PKG + "MlflowModelRegistryDataset", "model_name": "m", "stage_or_version": "latest"},
            "staged": {"type": PKG + "MlflowModelRegistryDataset", "model_name": "m", "stage_or_version": "Production"},
        }
    )
    bind_mlflow_datasets(catalog)
    assert [catalog[name].model_uri for name in ("by_number", "newest", "staged")] == [
        "models:/m/3", "models:/m/latest", "models:/m/Production"]
    with pytest.raises(DatasetError, match=r"either `alias:` or `stage_or_version:`"):
        MlflowModelRegistryDataset(model_name="m", alias="champion", stage_or_version="Production")


def test_tracking_disabled_keeps_the_model_in_memory(tracking_off: Store) -> None:
    before = runs_in(tracking_off)
    dataset = MlflowModelTrackingDataset(flavor="mlflow.sklearn")
    model = regressor()
    dataset.save(model)
    assert dataset.load() is model
    assert runs_in(tracking_off) == before


def test_local_model_folder_round_trip_and_fresh_interpreter(tmp_path: Path) -> None:
    model = regressor()
    dataset = MlflowModelLocalFileSystemDataset(filepath=str(tmp_path / "reg"), flavor="mlflow.sklearn")
    assert not dataset.exists()
    dataset.save(model)

    assert dataset.exists() and (tmp_path / "reg" / "MLmodel").is_file()
    assert any(line.startswith("scikit-learn==") for line in (tmp_path / "reg" / "requirements.txt").read_text().split())
    np.testing.assert_allclose(dataset.load().predict(X), model.predict(X))
    np.testing.assert_allclose(predict_in_fresh_interpreter(str(tmp_path / "reg")), model.predict(X))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reg"]  # no staging folder left behind


def test_local_model_overwrite_failing_midway_keeps_the_previous_model(tmp_path: Path) -> None:
    dataset = MlflowModelLocalFileSystemDataset(filepath=str(tmp_path / "reg"), flavor="mlflow.sklearn")
    good = regressor()
    dataset.save(good)
    broken = regressor(5.0)
    broken.lock = threading.Lock()  # skops refuses it after it started writing the model

    with pytest.raises(DatasetError):
        dataset.save(broken)

    np.testing.assert_allclose(dataset.load().predict(X), good.predict(X))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reg"]
    dataset.save(regressor(2.0))  # and a later good save replaces it
    np.testing.assert_allclose(dataset.load().predict(X), regressor(2.0).predict(X))


def test_local_model_versioned(tmp_path: Path) -> None:
    catalog = DataCatalog.from_config(
        {"reg": {"type": PKG + "MlflowModelLocalFileSystemDataset", "flavor": "mlflow.sklearn",
                 "filepath": str(tmp_path / "reg"), "versioned": True}}
    )
    bind_mlflow_datasets(catalog)
    catalog.save("reg", regressor(2.0))
    [version] = list((tmp_path / "reg").iterdir())
    assert (version / "reg" / "MLmodel").is_file()
    np.testing.assert_allclose(catalog.load("reg").predict(X), regressor(2.0).predict(X))


def test_local_model_refuses_remote_paths() -> None:
    with pytest.raises(DatasetError, match=r"writes to the local disk.*MlflowModelTrackingDataset"):
        MlflowModelLocalFileSystemDataset(filepath="s3://bucket/model", flavor="mlflow.sklearn")


def test_importing_and_building_every_dataset_does_not_import_mlflow(tmp_path: Path) -> None:
    built = script_result("build_catalog_of_every_dataset", {"folder": str(tmp_path)}, timeout=120)
    assert "MlflowMetricsHistoryDataset" in built["types"]
    assert not [m for m in built["modules"] if m == "mlflow" or m.startswith("mlflow.")], "mlflow imported"


def test_model_logging_outage_keeps_a_loadable_local_copy(failure_log, tracking_server_down) -> None:  # noqa: ANN001
    import json

    import mlflow.sklearn

    model = regressor()

    MlflowModelTrackingDataset(flavor="mlflow.sklearn", save_args={"name": "reg"}).save(model)

    [entry] = [json.loads(line) for line in failure_log.read_text().splitlines()]
    assert "model 'reg'" in entry["what"]
    np.testing.assert_allclose(mlflow.sklearn.load_model(entry["local_path"]).predict(X), model.predict(X))
    shutil.rmtree(Path(entry["local_path"]).parent)


def test_every_dataset_pickles(tmp_path: Path) -> None:
    import pickle

    from kedro_mlflow_starter.io import MlflowMetricDataset

    datasets = [
        MlflowModelTrackingDataset(flavor="mlflow.sklearn", save_args={"name": "m"}),
        MlflowModelLocalFileSystemDataset(filepath=str(tmp_path / "m"), flavor="mlflow.sklearn"),
        MlflowModelRegistryDataset(model_name="m", alias="champion"),
        MlflowMetricDataset(key="k", metadata={"owner": "me"}),
    ]
    for dataset in datasets:
        assert str(pickle.loads(pickle.dumps(dataset))) == str(dataset)
