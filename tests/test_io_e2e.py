"""Every MLflow dataset through a real `kedro run` of a generated project, with each runner.

One project, one store: each `kedro run` (sequential, threads, processes under spawn and
fork) must add exactly one run to the experiment holding every artifact, metric and model
the pipeline produced, and a later session must load them all back by run id.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.project_factory import KedroProject, make_project

PKG = "kedro_mlflow_starter.io."

NODES = '''
import pandas as pd


def train(df: pd.DataFrame, factor: float):
    from sklearn.linear_model import LinearRegression

    model = LinearRegression().fit(df[["a"]], df["b"] * factor)
    return model, model


def evaluate(model, df: pd.DataFrame):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    predictions = pd.DataFrame({"prediction": model.predict(df[["a"]])})
    r2 = float(model.score(df[["a"]], df["b"] * 2.0))
    figure, axes = plt.subplots()
    axes.plot(predictions["prediction"])
    curve = [1.0 / (step + 1) for step in range(25)]
    scores = {"mae": 0.25, "rmse": {"value": 0.5, "step": 3}, "loss": [{"value": 2.0, "step": 0}, {"value": 1.0, "step": 1}]}
    return predictions, r2, figure, curve, scores


def summarize(model, r2: float, curve: list, scores: dict, predictions: pd.DataFrame, df: pd.DataFrame) -> dict:
    return {
        "r2": r2,
        "curve_points": len(curve),
        "score_names": sorted(scores),
        "rows": len(predictions),
        "first_prediction": float(model.predict(df[["a"]].head(1))[0]),
    }
'''

REGISTRY = '''
from kedro.pipeline import Pipeline, node


def register_pipelines():
    from {package}.nodes import evaluate, summarize, train

    pipeline = Pipeline([
        node(train, ["raw", "params:factor"], ["regressor", "regressor_folder"], name="train"),
        node(evaluate, ["regressor", "raw"], ["predictions", "r2", "residual_plot", "loss_curve", "scores"],
             name="evaluate"),
        node(summarize, ["regressor", "r2", "loss_curve", "scores", "predictions", "raw"], "summary",
             name="summarize"),
    ])
    return {{"__default__": pipeline}}
'''

CATALOG: dict[str, Any] = {
    "raw": {"type": "pandas.CSVDataset", "filepath": "data/01_raw/raw.csv"},
    "regressor": {"type": PKG + "MlflowModelTrackingDataset", "flavor": "mlflow.sklearn"},
    "regressor_folder": {"type": PKG + "MlflowModelLocalFileSystemDataset", "flavor": "mlflow.sklearn",
                         "filepath": "data/06_models/regressor"},
    "predictions": {"type": PKG + "MlflowArtifactDataset", "artifact_path": "outputs",
                    "dataset": {"type": "pandas.CSVDataset", "filepath": "data/07_model_output/predictions.csv"}},
    "residual_plot": {"type": PKG + "MlflowArtifactDataset", "artifact_path": "plots",
                      "dataset": {"type": "matplotlib.MatplotlibDataset",
                                  "filepath": "data/08_reporting/residuals.png"}},
    "summary": {"type": PKG + "MlflowArtifactDataset",
                "dataset": {"type": "json.JSONDataset", "filepath": "data/08_reporting/summary.json"}},
    "r2": {"type": PKG + "MlflowMetricDataset"},
    "loss_curve": {"type": PKG + "MlflowMetricHistoryDataset"},
    "scores": {"type": PKG + "MlflowMetricsHistoryDataset"},
}

EXPECTED_ARTIFACTS = ["outputs/predictions.csv", "plots/residuals.png", "summary.json"]
EXPECTED_METRICS = {"r2", "loss_curve", "scores.mae", "scores.rmse", "scores.loss"}


@pytest.fixture(scope="module")
def ml_project(tmp_path_factory: pytest.TempPathFactory, migrated_db: Path) -> KedroProject:
    project = make_project(tmp_path_factory.mktemp("io-e2e"), nodes=NODES, registry=REGISTRY, catalog=CATALOG,
                           raw_rows=6)
    shutil.copy(migrated_db, project.db)
    return project


def client_of(project: KedroProject) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=project.tracking_uri)


def run_ids(project: KedroProject) -> set[str]:
    client = client_of(project)
    experiment = client.get_experiment_by_name(project.package)
    if experiment is None:
        return set()
    return {r.info.run_id for r in client.search_runs([experiment.experiment_id], max_results=1000)}


def artifacts(client: Any, run_id: str, path: str | None = None) -> list[str]:
    found: list[str] = []
    for item in client.list_artifacts(run_id, path):
        found += artifacts(client, run_id, item.path) if item.is_dir else [item.path]
    return sorted(found)


@pytest.mark.parametrize(
    ("runner", "mp_context"),
    [("SequentialRunner", None), ("ThreadRunner", None), ("ParallelRunner", "spawn"), ("ParallelRunner", "fork")],
)
def test_every_dataset_lands_in_the_one_run_of_a_kedro_run(ml_project: KedroProject, runner: str,
                                                           mp_context: str | None) -> None:
    before = run_ids(ml_project)
    # in the test process: ParallelRunner's workers fork or spawn from it, processes of their own
    env = {"MPLBACKEND": "Agg", **({"KEDRO_MP_CONTEXT": mp_context} if mp_context else {})}
    result = ml_project.run_in_process("run", "--runner", runner, env=env)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"

    new = run_ids(ml_project) - before
    assert len(new) == 1, f"expected one new run, got {len(new)} (stray runs?)"
    [run_id] = new
    client = client_of(ml_project)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert EXPECTED_METRICS <= set(run.data.metrics)
    assert [a for a in artifacts(client, run_id) if not a.startswith("kedro/")] == EXPECTED_ARTIFACTS  # kedro/: issue 14
    [model] = client.search_logged_models([run.info.experiment_id], filter_string=f"source_run_id = '{run_id}'")
    assert model.name == "regressor"
    assert [o.model_id for o in run.outputs.model_outputs] == [model.model_id]

    summary = json.loads(Path(client.download_artifacts(run_id, "summary.json", str(ml_project.path / "dl" / run_id)))
                         .read_text())
    assert summary["r2"] == pytest.approx(run.data.metrics["r2"])
    assert summary["curve_points"] == 25 and summary["score_names"] == ["scores.loss", "scores.mae", "scores.rmse"]  # kedro-mlflow's keys
    assert summary["first_prediction"] == pytest.approx(0.0)  # b = 10 a, factor 2 -> 20 a, a = 0 -> 0


def test_a_new_session_loads_everything_back_by_run_id(ml_project: KedroProject,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from kedro_mlflow_starter.io import (
        MlflowArtifactDataset,
        MlflowMetricDataset,
        MlflowMetricHistoryDataset,
        MlflowMetricsHistoryDataset,
        MlflowModelLocalFileSystemDataset,
        MlflowModelTrackingDataset,
    )

    if not run_ids(ml_project):  # run alone: the runner tests above have not filled the store
        result = ml_project.run_in_process("run", env={"MPLBACKEND": "Agg"})
        assert result.returncode == 0, result.stderr
    client = client_of(ml_project)
    experiment = client.get_experiment_by_name(ml_project.package)
    [latest] = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=1)
    run_id = latest.info.run_id
    monkeypatch.setenv("MLFLOW_TRACKING_URI", ml_project.tracking_uri)
    raw = pd.read_csv(ml_project.path / "data/01_raw/raw.csv")

    model = MlflowModelTrackingDataset(flavor="mlflow.sklearn", run_id=run_id, save_args={"name": "regressor"}).load()
    np.testing.assert_allclose(model.predict(raw[["a"]]), raw["a"] * 20.0, atol=1e-6)
    folder = MlflowModelLocalFileSystemDataset(filepath=str(ml_project.path / "data/06_models/regressor"),
                                               flavor="mlflow.sklearn").load()
    np.testing.assert_allclose(folder.predict(raw[["a"]]), raw["a"] * 20.0, atol=1e-6)

    predictions = MlflowArtifactDataset(
        dataset={"type": "pandas.CSVDataset", "filepath": "predictions.csv"}, artifact_path="outputs", run_id=run_id
    ).load()
    np.testing.assert_allclose(predictions["prediction"], raw["a"] * 20.0, atol=1e-6)
    assert MlflowMetricDataset(key="r2", run_id=run_id).load() == pytest.approx(1.0)
    assert MlflowMetricHistoryDataset(key="loss_curve", run_id=run_id).load() == [1.0 / (s + 1) for s in range(25)]
    # kedro-mlflow's shape: MLflow keys, one point as a dict, several as a list
    assert MlflowMetricsHistoryDataset(prefix="scores", run_id=run_id).load() == {
        "scores.loss": [{"value": 2.0, "step": 0}, {"value": 1.0, "step": 1}],
        "scores.mae": {"value": 0.25, "step": 0},
        "scores.rmse": {"value": 0.5, "step": 3},
    }


def test_a_bad_mlflow_entry_fails_before_any_node_runs(tmp_path: Path, migrated_db: Path) -> None:
    catalog = {**CATALOG, "regressor": {"type": PKG + "MlflowModelTrackingDataset", "flavor": "mlflow.sklern"}}
    project = make_project(tmp_path, nodes=NODES, registry=REGISTRY, catalog=catalog, raw_rows=6)
    shutil.copy(migrated_db, project.db)

    result = project.run_in_process("run", env={"MPLBACKEND": "Agg"})

    text = f"{result.stdout}\n{result.stderr}"
    assert result.returncode != 0
    assert "Catalog entry 'regressor' (MlflowModelTrackingDataset) is invalid" in text  # at catalog creation
    assert "unknown flavor 'mlflow.sklern'" in text and "Set `flavor:`" in text
    assert not (project.path / "data/06_models/regressor").exists()
