"""MlflowModelTrackingDataset (and what the model datasets share) with real scikit-learn models,
a real SQLite store and fresh interpreters."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from kedro.io import DataCatalog
from kedro.io.core import DatasetError

from kedro_mlflow_starter.framework.catalog_checks import build_mlflow_datasets
from kedro_mlflow_starter.io import (
    MlflowModelLocalFileSystemDataset,
    MlflowModelRegistryDataset,
    MlflowModelTrackingDataset,
    _common,
)
from tests.io_fixtures import PKG, X, Run, Store, predict_in_fresh_interpreter, regressor, runs_in, start_run
from tests.project_factory import script_result


def test_tracking_dataset_logs_a_logged_model_linked_to_the_run(run: Run) -> None:
    import mlflow

    catalog = DataCatalog.from_config(
        {"regressor": {"type": PKG + "MlflowModelTrackingDataset", "flavor": "mlflow.sklearn"}}
    )
    build_mlflow_datasets(catalog)
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
        build_mlflow_datasets(catalog)
    assert "mlflow.no_such_flavor" not in sys.modules


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


def test_tracking_disabled_keeps_the_model_in_memory(tracking_off: Store) -> None:
    before = runs_in(tracking_off)
    dataset = MlflowModelTrackingDataset(flavor="mlflow.sklearn")
    model = regressor()
    dataset.save(model)
    assert dataset.load() is model
    assert runs_in(tracking_off) == before


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
