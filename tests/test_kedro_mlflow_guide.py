"""Kedro's own MLflow guide ("How to add MLflow to your Kedro workflow", kedro's
``docs/integrations-and-plugins/mlflow.md``), followed step by step with our type names.

The guide is written for kedro-mlflow on the ``spaceflights-pandas`` starter, which is not
reachable here: the project below has the same shape (a model input table, a
split/train/evaluate data science pipeline with a scikit-learn regressor, a reporting node
drawing a matplotlib confusion matrix), built from generated data. What changes from the
guide's text: ``kedro_mlflow.io.artifacts.``/``kedro_mlflow.io.models.`` become
``kedro_mlflow_starter.io.``, and the project hook reads ``run_params["pipeline_names"]``
(Kedro 1.x; the guide's ``pipeline_name`` key is Kedro 0.19's).
"""

from __future__ import annotations

import functools
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.project_factory import KedroProject, make_project, project_env, run_script
from tests.tracking_helpers import output

PKG = "kedro_mlflow_starter.io."
FEATURES = ["engines", "passenger_capacity", "crew", "d_check_complete", "moon_clearance_complete",
            "iata_approved", "company_rating", "review_scores_rating"]

NODES = '''
import logging

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
from sklearn.linear_model import LinearRegression
from sklearn.metrics import r2_score
from sklearn.model_selection import train_test_split


def split_data(data: pd.DataFrame, parameters: dict):
    X = data[parameters["features"]]
    y = data["price"]
    return train_test_split(X, y, test_size=parameters["test_size"], random_state=parameters["random_state"])


def train_model(X_train: pd.DataFrame, y_train: pd.Series) -> LinearRegression:
    return LinearRegression().fit(X_train, y_train)


def evaluate_model(regressor: LinearRegression, X_test: pd.DataFrame, y_test) -> float:
    score = float(r2_score(y_test, regressor.predict(X_test)))
    logging.getLogger(__name__).info("Model has a coefficient R^2 of %.3f on test data.", score)
    return score


def create_confusion_matrix(y_test):
    actuals = (pd.Series(y_test.squeeze()) > y_test.squeeze().median()).astype(int)
    matrix = pd.crosstab(actuals, 1 - actuals)
    figure, axes = plt.subplots()
    axes.imshow(matrix.to_numpy())
    return figure
'''

REGISTRY = '''
from kedro.pipeline import Pipeline, node


def register_pipelines():
    from {package}.nodes import create_confusion_matrix, evaluate_model, split_data, train_model

    data_science = Pipeline([
        node(split_data, ["model_input_table", "params:model_options"], ["X_train", "X_test", "y_train", "y_test"],
             name="split_data_node"),
        node(train_model, ["X_train", "y_train"], "regressor", name="train_model_node"),
        node(evaluate_model, ["regressor", "X_test", "y_test"], "r2_score", name="evaluate_model_node"),
    ])
    reporting = Pipeline([node(create_confusion_matrix, "y_test", "dummy_confusion_matrix",
                               name="create_confusion_matrix_node")])
    return {{"__default__": data_science + reporting, "data_science": data_science, "reporting": reporting}}
'''

# The guide's "Track additional metadata" hook; `pipeline_names` is Kedro 1.x's key.
PROJECT_HOOKS = '''
import logging
import typing as t

import mlflow
from kedro.framework.hooks import hook_impl

logger = logging.getLogger(__name__)


class ExtraMLflowHooks:
    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, t.Any]):
        logger.info("Logging extra metadata to MLflow")
        mlflow.set_tags({
            "pipeline": ",".join(run_params["pipeline_names"] or ["__default__"]),
            "custom_version": "0.1.0",
        })
'''

SPACEFLIGHTS_CATALOG: dict[str, Any] = {
    "model_input_table": {"type": "pandas.CSVDataset", "filepath": "data/03_primary/model_input_table.csv"},
    "regressor": {"type": "pickle.PickleDataset", "filepath": "data/06_models/regressor.pickle", "versioned": True},
    "dummy_confusion_matrix": {"type": "matplotlib.MatplotlibDataset",
                               "filepath": "data/08_reporting/dummy_confusion_matrix.png", "versioned": True},
    "r2_score": {"type": PKG + "MlflowMetricDataset"},
}
PARAMETERS = {"model_options": {"test_size": 0.2, "random_state": 3, "features": FEATURES}}


class Guide:
    """The project as the guide leaves it after each step, and what each step produced."""

    def __init__(self, project: KedroProject):
        self.project = project
        self.catalog = {name: dict(entry) for name, entry in SPACEFLIGHTS_CATALOG.items()}
        self.runs: dict[str, Any] = {}
        self.done: set[str] = set()  # the guide's steps already taken in this project
        self.last_output = ""  # what the last kedro_run printed

    @property
    def store(self) -> str:
        return (self.project.path / "mlflow_runs").resolve().as_uri()

    def client(self, uri: str | None = None) -> Any:
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=uri or self.store)

    def write_catalog(self) -> None:
        self.project.write_yaml("conf/base/catalog.yml", self.catalog)

    def kedro_run(self, *args: str) -> Any:
        """``kedro run ARGS`` (must succeed), then the one new run it left in the guide's store."""
        before = {run.info.run_id for run in self.all_runs()}
        result = self.project.run_in_process("run", *args)
        assert result.returncode == 0, output(result)
        self.last_output = output(result)
        new = [run for run in self.all_runs() if run.info.run_id not in before]
        assert len(new) == 1, f"expected one new run, got {len(new)}:\n{output(result)}"
        return new[0]

    def all_runs(self, uri: str | None = None) -> list[Any]:
        client = self.client(uri)
        experiments = [e.experiment_id for e in client.search_experiments()]
        return client.search_runs(experiments, max_results=1000) if experiments else []

    def artifacts(self, run: Any, path: str | None = None) -> list[str]:
        found: list[str] = []
        for item in self.client().list_artifacts(run.info.run_id, path):
            found += self.artifacts(run, item.path) if item.is_dir else [item.path]
        return found


STEPS: list[Callable[[Guide], None]] = []


def step(test: Callable[[Guide], None]) -> Callable[[Guide], None]:
    """One step of the guide, which builds on the steps before it: those not yet taken in this
    worker's project (pytest-xdist may hand a module's tests to two workers) are taken first."""
    STEPS.append(test)

    @functools.wraps(test)
    def take(guide: Guide) -> None:
        for earlier in STEPS[:STEPS.index(test) + 1]:
            if earlier.__name__ not in guide.done:
                earlier(guide)
                guide.done.add(earlier.__name__)

    return take


@pytest.fixture(scope="module")
def guide(tmp_path_factory: pytest.TempPathFactory) -> Guide:
    rng = np.random.default_rng(0)
    table = pd.DataFrame(rng.integers(1, 10, size=(120, len(FEATURES))).astype(float), columns=FEATURES)
    table["price"] = table.to_numpy() @ np.linspace(1.0, 3.0, len(FEATURES)) + rng.normal(0, 0.5, len(table))
    project = make_project(tmp_path_factory.mktemp("guide"), package="spaceflights_mlflow", nodes=NODES,
                           registry=REGISTRY, parameters=PARAMETERS, catalog=SPACEFLIGHTS_CATALOG)
    (project.path / "data/03_primary").mkdir(parents=True)
    table.to_csv(project.path / "data/03_primary/model_input_table.csv", index=False)
    return Guide(project)


@pytest.fixture(autouse=True)
def _file_store_allowed(monkeypatch: pytest.MonkeyPatch, guide: Guide) -> None:
    """The guide's store is a folder (``mlflow_runs``); MLflow 3 reads it only when told so.

    MLflow's file model registry reads model versions through a client of the default store:
    pointing that at the guide's store keeps it from creating ./mlflow.db where pytest runs.
    """
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", guide.store)


@step
def test_1_easy_tracking_with_only_the_tracking_uri_in_mlflow_yml(guide: Guide) -> None:
    guide.project.write_yaml("conf/local/mlflow.yml", {"server": {"mlflow_tracking_uri": "mlflow_runs"}})

    run = guide.kedro_run()

    assert run.info.status == "FINISHED"
    assert run.data.tags["kedro.pipeline_names"] == "__default__"
    assert set(run.data.params) >= {"model_options"} or any(k.startswith("model_options") for k in run.data.params)
    assert 0.9 < run.data.metrics["r2_score"] <= 1.0
    assert not (guide.project.path / "mlflow.db").exists(), "mlflow.yml's store was not used"


@step
def test_2_the_confusion_matrix_wrapped_in_mlflow_artifact_dataset(guide: Guide) -> None:
    guide.catalog["dummy_confusion_matrix"] = {
        "type": PKG + "MlflowArtifactDataset",
        "dataset": {"type": "matplotlib.MatplotlibDataset", "filepath": "data/08_reporting/dummy_confusion_matrix.png"},
    }
    guide.write_catalog()
    # The guide's warning: the folder the versioned dataset made must go before the first save.
    shutil.rmtree(guide.project.path / "data/08_reporting/dummy_confusion_matrix.png")

    run = guide.kedro_run()

    assert "dummy_confusion_matrix.png" in guide.artifacts(run)
    assert (guide.project.path / "data/08_reporting/dummy_confusion_matrix.png").is_file()


@step
def test_3_the_regressor_as_a_registered_model_tracking_dataset(guide: Guide) -> None:
    guide.catalog["regressor"] = {"type": PKG + "MlflowModelTrackingDataset", "flavor": "mlflow.sklearn",
                                  "save_args": {"registered_model_name": "spaceflights-regressor"}}
    guide.write_catalog()

    run = guide.kedro_run()

    client = guide.client()
    models = client.search_logged_models([run.info.experiment_id],
                                         filter_string=f"source_run_id = '{run.info.run_id}'")
    assert [model.name for model in models] == ["regressor"]
    (version,) = client.search_model_versions("name = 'spaceflights-regressor'")
    assert version.run_id == run.info.run_id
    # MLflow's bare registration prints are one of our log lines
    assert "Successfully registered model" not in guide.last_output and "Created version" not in guide.last_output
    assert "MLflow: registered version 1 of model 'spaceflights-regressor' (a new registered model)." in \
        " ".join(guide.last_output.split()), guide.last_output
    guide.runs["trained"] = run


@step
def test_4_the_model_loaded_back_from_a_run_given_as_a_runtime_param(guide: Guide) -> None:
    trained = guide.runs["trained"]
    guide.catalog.update({
        "X_test": {"type": "pandas.ParquetDataset", "filepath": "data/05_model_input/X_test.parquet"},
        "y_test": {"type": "pandas.CSVDataset", "filepath": "data/05_model_input/y_test.csv"},
    })
    guide.catalog["regressor"]["run_id"] = "${runtime_params:mlflow_run_id,null}"
    guide.write_catalog()

    guide.kedro_run("--to-outputs=X_test,y_test")
    evaluation = guide.kedro_run("--from-nodes=evaluate_model_node", "--params", f"mlflow_run_id={trained.info.run_id}")

    # the same model on the same test set: the model came from the trained run
    assert evaluation.data.metrics["r2_score"] == pytest.approx(trained.data.metrics["r2_score"])
    assert guide.client().search_logged_models([trained.info.experiment_id],
                                               filter_string=f"source_run_id = '{evaluation.info.run_id}'") == []


@step
def test_5_a_project_hook_tags_the_run_with_mlflow_set_tags(guide: Guide) -> None:
    guide.project.write(f"src/{guide.project.package}/hooks.py", PROJECT_HOOKS)
    guide.project.write(f"src/{guide.project.package}/settings.py",
                        "from .hooks import ExtraMLflowHooks\n\nHOOKS = (ExtraMLflowHooks(),)\n")

    run = guide.kedro_run()

    assert run.data.tags["pipeline"] == "__default__"
    assert run.data.tags["custom_version"] == "0.1.0"
    assert run.info.status == "FINISHED"


@step
def test_6_the_python_api_joins_the_users_run_where_it_lives(guide: Guide) -> None:
    before = {run.info.run_id for run in guide.all_runs()}

    done = run_script("guide_python_api", {"experiment": "Kedro Spaceflights test"},
                      cwd=guide.project.path, env=project_env(), timeout=600)
    assert done.returncode == 0, output(done)
    result = json.loads(done.stdout.strip().splitlines()[-1])

    default_store = f"sqlite:///{(guide.project.path / 'mlflow.db').resolve().as_posix()}"
    assert result["tracking_uri"] == default_store, "MLflow's default store moved: update the guide test"
    assert result["active_after"] is None
    run = guide.client(default_store).get_run(result["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.tags["session_id"] == result["session_id"]
    assert run.data.tags["pipeline"] == "__default__"  # the project hook tagged the same run
    assert any(key.startswith("model_options") for key in run.data.params)
    assert "r2_score" in run.data.metrics
    experiment = guide.client(default_store).get_experiment(run.info.experiment_id)
    assert experiment.name == "Kedro Spaceflights test"
    assert len(guide.all_runs(default_store)) == 1, "a second run was opened in the default store"
    assert {run.info.run_id for run in guide.all_runs()} == before, "a run was opened in mlflow.yml's store"
    assert "dummy_confusion_matrix.png" in [a.path for a in guide.client(default_store).list_artifacts(run.info.run_id)]
    assert [m.name for m in guide.client(default_store).search_logged_models(
        [run.info.experiment_id], filter_string=f"source_run_id = '{run.info.run_id}'")] == ["regressor"]
    # said once, naming both stores
    assert output(done).count("is set aside for this run") == 1, output(done)
    assert "mlflow_runs" in output(done) and "mlflow.db" in output(done)
