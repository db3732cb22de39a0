"""log_pipeline_model called directly, into a run created with MlflowClient in a temp SQLite store.

The project is trained once by `kedro run` with the plugin's hook disabled, so these tests
exercise exactly the function the hook calls, with the artifacts the run left on disk.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.pipeline_ml_fixtures import FEATURES, SETTINGS_WITHOUT_PLUGIN_HOOK, bootstrap, make_iris_project
from tests.tracking_helpers import logged_models_of_run


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, migrated_db: Path):
    """The iris project after one untracked `kedro run`, configured in this process."""
    project = make_iris_project(tmp_path_factory.mktemp("logging"), migrated_db, settings=SETTINGS_WITHOUT_PLUGIN_HOOK)
    project.run_in_process("run", check=True)
    bootstrap(project)
    return project


@pytest.fixture
def context(trained, monkeypatch: pytest.MonkeyPatch):
    """(project, PipelineML, catalog, client, experiment id) with MLFLOW_TRACKING_URI set."""
    from kedro.framework.project import pipelines
    from kedro.framework.session import KedroSession
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_URI", trained.tracking_uri)
    with KedroSession.create(trained.path) as session:
        catalog = session.load_context().catalog
    client = MlflowClient(trained.tracking_uri)
    experiment = client.get_experiment_by_name("direct")
    experiment_id = (
        experiment.experiment_id
        if experiment
        else client.create_experiment("direct", artifact_location=(trained.path / "mlartifacts").as_uri())
    )
    return trained, pipelines["training"], catalog, client, experiment_id


def _model_dir(client, model_uri: str) -> Path:
    model = client.get_logged_model(model_uri.split("/")[-1])
    return Path(model.artifact_location.removeprefix("file://"))


def test_logs_one_ready_model_linked_to_the_run_and_leaves_the_run_alone(context) -> None:
    import mlflow

    from kedro_mlflow_starter.models.logging import log_pipeline_model

    project, ml, catalog, client, experiment_id = context
    run_id = client.create_run(experiment_id).info.run_id
    model_uri = log_pipeline_model(ml, catalog, run_id)

    assert model_uri.startswith("models:/m-")
    models = logged_models_of_run(client, run_id)
    assert [m.model_id for m in models] == [model_uri.removeprefix("models:/")]
    assert models[0].name == "model"
    assert models[0].experiment_id == experiment_id
    assert str(models[0].status) in ("READY", "LoggedModelStatus.READY")
    run = client.get_run(run_id)
    assert run.info.status == "RUNNING"  # the hook decides how the run ends, not us
    assert [o.model_id for o in run.outputs.model_outputs] == [models[0].model_id]
    assert mlflow.active_run() is None


def test_model_folder_is_self_contained_with_fast_explicit_requirements(context) -> None:
    from kedro_mlflow_starter.models.logging import log_pipeline_model

    project, ml, catalog, client, experiment_id = context
    run_id = client.create_run(experiment_id).info.run_id
    folder = _model_dir(client, log_pipeline_model(ml, catalog, run_id))

    requirements = (folder / "requirements.txt").read_text().split()
    names = {line.split("==")[0] for line in requirements}
    assert {"kedro", "mlflow", "cloudpickle", "kedro-datasets", "pandas", "scikit-learn", "joblib"} <= names
    assert all("==" in line for line in requirements)
    # shipped as code instead (issue 11 §4): no index serves them
    assert not names & {"iris-ml", "iris_ml", "pytest", "kedro-telemetry", "kedro-mlflow-starter"}
    assert (folder / "code/kedro_mlflow_starter/models/kedro_pipeline_model.py").is_file()
    assert not list((folder / "code/kedro_mlflow_starter").rglob("__pycache__"))

    assert (folder / "code/iris_ml/nodes.py").is_file()
    assert (folder / "artifacts/scaler/scaler.pkl").is_file()
    assert (folder / "artifacts/classifier/classifier.pkl").is_file()  # versioned in the project
    assert json.loads((folder / "artifacts/label_map/label_map.json").read_text()) == {
        "0": "setosa", "1": "versicolor", "2": "virginica"}

    mlmodel = yaml.safe_load((folder / "MLmodel").read_text())
    inputs = json.loads(mlmodel["signature"]["inputs"])
    assert [column["name"] for column in inputs] == FEATURES
    assert [c["name"] for c in json.loads(mlmodel["signature"]["outputs"])] == ["label", "score"]
    params = json.loads(mlmodel["signature"]["params"])
    assert params == [{"name": "label_prefix", "default": "iris-", "shape": None, "type": "string"}]
    example = json.loads((folder / "input_example.json").read_text())
    assert example["columns"] == FEATURES and len(example["data"]) == 5


def test_overrides_name_and_register_the_model(context) -> None:
    from kedro_mlflow_starter.models.logging import log_pipeline_model

    project, ml, catalog, client, experiment_id = context
    run_id = client.create_run(experiment_id).info.run_id
    model_uri = log_pipeline_model(
        ml, catalog, run_id, name="iris_pipeline", registered_model_name="iris-direct", signature=None,
        input_example=None,
    )
    model_id = model_uri.removeprefix("models:/")
    assert client.get_logged_model(model_id).name == "iris_pipeline"
    versions = client.search_model_versions("name = 'iris-direct'")
    assert [str(v.version) for v in versions] == ["1"]
    assert model_id in versions[0].source
    assert yaml.safe_load((_model_dir(client, model_uri) / "MLmodel").read_text()).get("signature") is None


def test_in_process_tracking_uri_elsewhere_is_honoured_then_restored(context, tmp_path, monkeypatch) -> None:
    import os

    import mlflow

    from kedro_mlflow_starter.models.logging import log_pipeline_model

    project, ml, catalog, client, experiment_id = context
    other = f"sqlite:///{tmp_path / 'other.db'}"
    monkeypatch.setattr("mlflow.tracking._tracking_service.utils._tracking_uri", other)
    run_id = client.create_run(experiment_id).info.run_id
    model_uri = log_pipeline_model(ml, catalog, run_id, input_example=None)

    assert [m.model_id for m in logged_models_of_run(client, run_id)] == [model_uri.removeprefix("models:/")]
    assert mlflow.get_tracking_uri() == other
    assert os.environ["MLFLOW_TRACKING_URI"] == project.tracking_uri


def test_unpersisted_artifact_fails_before_creating_a_model(context) -> None:
    from kedro.io import MemoryDataset

    from kedro_mlflow_starter.pipeline import KedroMlflowPipelineMLError
    from kedro_mlflow_starter.models.logging import log_pipeline_model

    project, ml, catalog, client, experiment_id = context
    catalog["classifier"] = MemoryDataset()
    run_id = client.create_run(experiment_id).info.run_id
    with pytest.raises(KedroMlflowPipelineMLError, match="'classifier', which is a MemoryDataset with no data"):
        log_pipeline_model(ml, catalog, run_id)
    assert logged_models_of_run(client, run_id) == []


def test_inference_failing_on_the_sample_names_the_dataset(context) -> None:
    from kedro.io import MemoryDataset

    from kedro_mlflow_starter.pipeline import KedroMlflowPipelineMLError
    from kedro_mlflow_starter.models.logging import log_pipeline_model

    project, ml, catalog, client, experiment_id = context
    catalog["label_map"] = MemoryDataset({"9": "no-such-class"})
    run_id = client.create_run(experiment_id).info.run_id
    with pytest.raises(KedroMlflowPipelineMLError, match="fails on the first rows of 'instances': KeyError"):
        log_pipeline_model(ml, catalog, run_id)


def test_catalog_check_before_the_run_names_unpersisted_artifacts(context) -> None:
    from kedro.io import DataCatalog, MemoryDataset

    from kedro_mlflow_starter.pipeline import KedroMlflowPipelineMLError
    from kedro_mlflow_starter.models.logging import check_pipeline_ml_catalog

    project, ml, catalog, client, experiment_id = context
    check_pipeline_ml_catalog(ml, catalog)  # the project's catalog persists all three
    catalog["label_map"] = MemoryDataset()
    with pytest.raises(KedroMlflowPipelineMLError, match="'label_map', which is a MemoryDataset.*pickle.PickleDataset"):
        check_pipeline_ml_catalog(ml, catalog)
    with pytest.raises(KedroMlflowPipelineMLError, match="needs 'classifier' but the catalog has no such entry"):
        check_pipeline_ml_catalog(ml, DataCatalog({"scaler": catalog["scaler"]}))
