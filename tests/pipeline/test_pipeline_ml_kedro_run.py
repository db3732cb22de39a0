"""End to end: `kedro run` of a PipelineML logs a model that predicts anywhere MLflow runs.

One project per module: trained by `kedro run` (tracked by the plugin's hook; its runs in the
test process, as ``run_kedro_in_process`` runs the same CLI), then the model is loaded in a fresh
interpreter outside the project and served with `mlflow models serve --env-manager local`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.project_factory import free_port, script_result
from tests.pipeline_ml_fixtures import FEATURES, isolated_env, make_iris_project, runs_of
from tests.tracking_helpers import logged_models_of_run

EXPERIMENT = "iris_ml"
WARNING_TEXT = "pipeline model will not be logged"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, migrated_db: Path):
    return make_iris_project(tmp_path_factory.mktemp("kedro-run"), migrated_db)


@pytest.fixture(scope="module")
def client(project):
    from mlflow import MlflowClient

    return MlflowClient(project.tracking_uri)


@pytest.fixture(scope="module")
def default_run(project, client):
    """`kedro run` (__default__ = processing + PipelineML): (run id, model id)."""
    result = project.run_in_process("run")
    assert result.returncode == 0, result.stdout + result.stderr
    run = runs_of(client, EXPERIMENT)[-1]
    models = logged_models_of_run(client, run.info.run_id)
    assert len(models) == 1, [m.model_id for m in models]
    return run.info.run_id, models[0].model_id


@pytest.fixture(scope="module")
def outside(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A working directory that is not the project."""
    return tmp_path_factory.mktemp("elsewhere")


@pytest.fixture(scope="module")
def direct_predictions(project, default_run) -> pd.DataFrame:
    """The inference pipeline run directly by Kedro on the same instances."""
    result = project.run_in_process("run", "--pipelines", "inference")
    assert result.returncode == 0, result.stdout + result.stderr
    return pd.read_csv(project.path / "data/07_model_output/predictions.csv")


def test_default_run_logs_exactly_one_model_linked_to_the_finished_run(client, default_run) -> None:
    run_id, model_id = default_run
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert [output.model_id for output in run.outputs.model_outputs] == [model_id]
    model = client.get_logged_model(model_id)
    assert model.name == "model"
    assert model.source_run_id == run_id


def test_model_predicts_in_fresh_interpreter_outside_the_project(project, default_run, direct_predictions, outside):
    run_id, model_id = default_run
    result = script_result(
        "predict_with_model",
        {"must_not_import": ["iris_ml"],
         "input": {"csv": str(project.path / "data/05_model_input/instances.csv")},
         "predictions": {"all": {"model_uri": f"models:/{model_id}"},
                         "overridden": {"model_uri": f"models:/{model_id}", "rows": 2,
                                        "params": {"label_prefix": "x:"}}},
         "module_files": ["iris_ml.nodes"]},
        cwd=outside,
        env=isolated_env({"MLFLOW_TRACKING_URI": project.tracking_uri}),
        timeout=120,
    )
    assert result["importable"] == {"iris_ml": False}, "the project must not be importable"
    predictions = result["predictions"]["all"]["data"]
    got = {"labels": predictions["label"], "scores": predictions["score"],
           "overridden": result["predictions"]["overridden"]["data"]["label"],
           "nodes_file": result["module_files"]["iris_ml.nodes"]}
    assert got["labels"] == list(direct_predictions["label"])
    assert got["scores"] == pytest.approx(list(direct_predictions["score"]), rel=1e-9)
    assert all(label.startswith("iris-") for label in got["labels"])
    assert got["overridden"] == ["x:" + label.removeprefix("iris-") for label in got["labels"][:2]]
    assert "/code/iris_ml/" in got["nodes_file"]  # the copy shipped with the model
    assert not got["nodes_file"].startswith(str(project.path / "src"))


def _wait_until_serving(process: subprocess.Popen, url: str, deadline: float) -> None:
    import requests

    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"mlflow models serve exited early ({process.returncode}): {process.stdout.read()}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise AssertionError("mlflow models serve did not answer /ping within the time limit")


def test_mlflow_models_serve_answers_invocations_and_rejects_missing_columns(
    project, default_run, direct_predictions, outside
) -> None:
    import requests

    run_id, model_id = default_run
    port = free_port()
    mlflow_cli = str(Path(isolated_env()["PATH"].split(os.pathsep)[0]) / "mlflow")
    process = subprocess.Popen(
        [mlflow_cli, "models", "serve", "-m", f"models:/{model_id}", "--env-manager", "local",
         "-h", "127.0.0.1", "-p", str(port), "-w", "1"],
        cwd=outside,
        env=isolated_env({"MLFLOW_TRACKING_URI": project.tracking_uri}),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        _wait_until_serving(process, f"http://127.0.0.1:{port}/ping", time.monotonic() + 120)
        instances = pd.read_csv(project.path / "data/05_model_input/instances.csv").head(4)
        payload = {"dataframe_split": instances.to_dict(orient="split", index=False)}
        response = requests.post(f"http://127.0.0.1:{port}/invocations", json=payload, timeout=30)
        assert response.status_code == 200, response.text
        predictions = pd.DataFrame(response.json()["predictions"])
        assert list(predictions["label"]) == list(direct_predictions["label"].head(4))

        with_params = dict(payload, params={"label_prefix": "served:"})
        response = requests.post(f"http://127.0.0.1:{port}/invocations", json=with_params, timeout=30)
        assert response.status_code == 200, response.text
        assert all(p["label"].startswith("served:") for p in response.json()["predictions"])

        missing = {"dataframe_split": instances.drop(columns=["petal_width"]).to_dict(orient="split", index=False)}
        response = requests.post(f"http://127.0.0.1:{port}/invocations", json=missing, timeout=30)
        assert response.status_code == 400, response.text
        assert "petal_width" in response.text
        assert process.poll() is None  # a bad request is an error answer, not a crash
        assert requests.get(f"http://127.0.0.1:{port}/ping", timeout=5).status_code == 200
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=15)


def test_run_of_the_training_pipeline_alone_logs_the_model(project, client, default_run) -> None:
    result = project.run_in_process("run", "--pipelines", "training")
    assert result.returncode == 0, result.stdout + result.stderr
    run = runs_of(client, EXPERIMENT)[-1]
    assert run.info.run_id != default_run[0]
    assert len(logged_models_of_run(client, run.info.run_id)) == 1
    assert WARNING_TEXT not in result.stdout + result.stderr


def test_to_nodes_cut_that_drops_the_inference_inputs_warns_and_logs_no_model(project, client, default_run) -> None:
    result = project.run_in_process("run", "--to-nodes", "fit_scaler")
    assert result.returncode == 0, result.stdout + result.stderr
    output = " ".join((result.stdout + result.stderr).split())  # rich wraps long log lines
    assert output.count(WARNING_TEXT) == 1, output[-3000:]
    assert "'classifier', 'label_map'" in output
    run = runs_of(client, EXPERIMENT)[-1]
    assert run.info.status == "FINISHED"
    assert logged_models_of_run(client, run.info.run_id) == []


def test_signature_and_example_come_from_the_input_dataset(project, default_run, monkeypatch) -> None:
    from mlflow.models import get_model_info

    monkeypatch.setenv("MLFLOW_TRACKING_URI", project.tracking_uri)
    info = get_model_info(f"models:/{default_run[1]}")
    assert info.signature.inputs.input_names() == FEATURES
    assert info.signature.params.to_dict() == [
        {"name": "label_prefix", "default": "iris-", "shape": None, "type": "string"}]
