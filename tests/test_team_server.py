"""Projects tracking to a real `mlflow server`: artifacts go through the server, models load back.

A small project with every kind of MLflow dataset, and the project the starter generates.
"""

from __future__ import annotations

import pandas as pd
import pytest

from tests.pipeline_ml_fixtures import isolated_env
from tests.project_factory import script_result
from tests.server_fixtures import LOCAL_OUTPUTS, all_artifacts, make_team_project
from tests.tracking_helpers import output


def _new_runs(server, experiment: str, before: set[str]) -> list:
    client = server.client
    found = client.get_experiment_by_name(experiment)
    runs = client.search_runs([found.experiment_id], max_results=1000) if found else []
    return [run for run in runs if run.info.run_id not in before]


def _serving_env(server, tmp_path) -> dict[str, str]:
    """A serving machine that only knows the server. mlflow.*.load_model downloads a model from
    a server into a temp folder it never removes: that machine's own temp folder, here."""
    temp = tmp_path / "serving-temp"
    temp.mkdir(exist_ok=True)
    return {"MLFLOW_TRACKING_URI": server.uri, "TMPDIR": str(temp)}


def test_a_project_tracks_to_the_server_and_its_models_load_back(tmp_path, mlflow_server):
    server = mlflow_server
    project = make_team_project(tmp_path, server.uri, package="server_project")

    result = project.run_in_process("run")

    assert result.returncode == 0, output(result)
    [run] = _new_runs(server, "server_project", set())
    assert run.info.status == "FINISHED"
    assert run.data.params == {"factor": "2.0"}
    assert {k for k in run.data.metrics if not k.startswith("time.")} == {"r2"}  # node timings: issue 14
    # The client only knows the server: the artifact root is the server's proxy, not a path.
    assert run.info.artifact_uri.startswith("mlflow-artifacts:/")
    client = server.client
    assert [a for a in all_artifacts(client, run.info.run_id) if not a.startswith("kedro/")] == ["outputs/predictions.csv"]
    stored = server.artifacts / run.info.experiment_id / run.info.run_id / "artifacts" / "outputs" / "predictions.csv"
    assert stored.read_bytes() == (project.path / "data/07_model_output/predictions.csv").read_bytes()
    uploads = [line for line in server.log.read_text().splitlines()
               if "/api/2.0/mlflow-artifacts/artifacts/" in line and "PUT" in line]
    assert any(f"{run.info.run_id}/artifacts/outputs/predictions.csv" in line for line in uploads)
    # Nothing was written next to the project as if the store were local.
    assert not (project.path / "mlflow.db").exists()
    assert not (project.path / "mlartifacts").exists() and not (project.path / "mlruns").exists()
    assert f"{server.uri}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}" in output(result)

    models = {m.name: m for m in client.search_logged_models(
        [run.info.experiment_id], filter_string=f"source_run_id = '{run.info.run_id}'")}
    assert set(models) == {"regressor_model", "model"}
    for model in models.values():
        files = list((server.artifacts / run.info.experiment_id / "models" / model.model_id / "artifacts").rglob("MLmodel"))
        assert files, f"model {model.name} was not uploaded to the server's artifact store"

    # A fresh interpreter that only knows the server's URI loads both models and predicts.
    loaded = script_result(
        "predict_with_model",
        {"input": {"columns": {"a": [1, 2, 3], "b": [0, 0, 0]}},
         "predictions": {"sk": {"model_uri": f"models:/{models['regressor_model'].model_id}", "flavor": "sklearn",
                                "columns": ["a"]},
                         "pipe": {"model_uri": f"models:/{models['model'].model_id}"}}},
        cwd=tmp_path,
        env=isolated_env(_serving_env(server, tmp_path)),
        timeout=120,
    )
    predictions = {"sk": loaded["predictions"]["sk"]["values"],
                   "pipe": loaded["predictions"]["pipe"]["data"]["prediction"]}
    assert predictions["sk"] == pytest.approx([20.0, 40.0, 60.0])  # b = 10 a, factor 2
    assert predictions["pipe"] == pytest.approx([20.0, 40.0, 60.0])
    local = pd.read_csv(project.path / "data/07_model_output/predictions.csv")
    assert local["prediction"].tolist() == pytest.approx([0.0, 20.0, 40.0, 60.0, 80.0, 100.0])
    for relative in LOCAL_OUTPUTS:
        assert (project.path / relative).is_file()


def test_the_generated_starter_project_tracks_to_the_server(tmp_path, mlflow_server):
    from tests.starter_fixtures import (
        PACKAGE,
        PROJECT_NAME,
        REPO_NAME,
        GeneratedProject,
        assert_ok,
        kedro_new_in_process,
        write_config,
    )

    server = mlflow_server
    config = write_config(tmp_path / "config.yml", project_name=PROJECT_NAME, mlflow_tracking_uri=server.uri,
                          output_dir=str(tmp_path))
    assert_ok(kedro_new_in_process("--starter=mlflow-iris", f"--config={config}", cwd=tmp_path,
                                   home=tmp_path / "home"), "kedro new")
    project = tmp_path / REPO_NAME

    # in this process: what the run sends to the server is checked, not a fresh process
    result = GeneratedProject(project, tmp_path / "home").kedro_in_process("run", env={"MPLBACKEND": "Agg"})

    assert_ok(result, "kedro run")
    client = server.client
    experiment = client.get_experiment_by_name(PACKAGE)
    [run_] = client.search_runs([experiment.experiment_id])
    assert run_.info.status == "FINISHED" and run_.info.artifact_uri.startswith("mlflow-artifacts:/")
    logged = all_artifacts(client, run_.info.run_id)
    assert {"reports/confusion_matrix.png", "reports/classification_report.txt"} <= set(logged)
    for relative in logged:
        assert (server.artifacts / experiment.experiment_id / run_.info.run_id / "artifacts" / relative).is_file()
    assert any(key.startswith("test") for key in run_.data.metrics)
    assert not (project / "mlflow.db").exists() and not (project / "mlartifacts").exists()
    models = client.search_logged_models([experiment.experiment_id],
                                         filter_string=f"source_run_id = '{run_.info.run_id}'")
    [pipeline_model] = [m for m in models if m.name == "iris_pipeline_model"]
    loaded = script_result(
        "predict_with_model",
        {"input": {"csv": "data/05_model_input/instances.csv"},
         "predictions": {"pipe": {"model_uri": f"models:/{pipeline_model.model_id}"}}},
        cwd=project,
        env=isolated_env(_serving_env(server, tmp_path)),
        timeout=120,
    )
    instances = pd.read_csv(project / "data/05_model_input/instances.csv")
    assert loaded["predictions"]["pipe"]["length"] == len(instances)
