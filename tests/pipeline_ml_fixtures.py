"""A real scikit-learn Kedro project with a PipelineML, for the pipeline-model tests.

The project (package ``iris_ml``): ``processing`` cleans the raw iris CSV into a parquet
file; ``training`` (a ``PipelineML``) splits it, fits a scaler (joblib pickle), a logistic
regression (versioned pickle) and a label map (JSON), and writes the held-out features to
``instances`` (CSV). Its inference pipeline scales ``instances``, predicts and names the
classes with ``params:label_prefix`` -> ``predictions`` (a DataFrame: label, score).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

from tests.project_factory import KedroProject, make_project, project_env

PACKAGE = "iris_ml"
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]

NODES = '''
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def clean(raw: pd.DataFrame) -> pd.DataFrame:
    return raw.dropna().reset_index(drop=True)


def split(iris: pd.DataFrame, options: dict):
    shuffled = iris.sample(frac=1.0, random_state=options["seed"]).reset_index(drop=True)
    n_test = int(len(shuffled) * options["test_size"])
    train, test = shuffled.iloc[n_test:], shuffled.iloc[:n_test]
    return train[FEATURES], train["species"], test[FEATURES].reset_index(drop=True)


def fit_scaler(train_x: pd.DataFrame) -> StandardScaler:
    return StandardScaler().fit(train_x)


def fit(scaler: StandardScaler, train_x: pd.DataFrame, train_y: pd.Series, options: dict):
    names = sorted(train_y.unique())
    codes = train_y.map({name: i for i, name in enumerate(names)})
    model = LogisticRegression(C=options["C"], max_iter=options["max_iter"])
    model.fit(scaler.transform(train_x), codes)
    return model, {str(i): name for i, name in enumerate(names)}


def scale(instances: pd.DataFrame, scaler: StandardScaler) -> np.ndarray:
    return scaler.transform(instances[FEATURES])


def predict(scaled: np.ndarray, classifier: LogisticRegression, label_map: dict, label_prefix: str) -> pd.DataFrame:
    proba = classifier.predict_proba(scaled)
    labels = [label_prefix + label_map[str(code)] for code in proba.argmax(axis=1)]
    return pd.DataFrame({"label": labels, "score": proba.max(axis=1)})
'''

REGISTRY = '''
from kedro.pipeline import Pipeline, node, pipeline

from kedro_mlflow_starter import pipeline_ml_factory


def register_pipelines():
    from {package}.nodes import clean, fit, fit_scaler, predict, scale, split

    processing = pipeline([node(clean, "raw_iris", "iris", name="clean")])
    training = pipeline([
        node(split, ["iris", "params:split"], ["train_x", "train_y", "instances"], name="split"),
        node(fit_scaler, "train_x", "scaler", name="fit_scaler"),
        node(fit, ["scaler", "train_x", "train_y", "params:model"], ["classifier", "label_map"], name="fit"),
    ])
    inference = pipeline([
        node(scale, ["instances", "scaler"], "scaled", name="scale"),
        node(predict, ["scaled", "classifier", "label_map", "params:label_prefix"], "predictions", name="predict"),
    ])
    training_ml = pipeline_ml_factory(training, inference, input_name="instances"{log_model_kwargs})
    return {{
        "__default__": processing + training_ml,
        "processing": processing,
        "training": training_ml,
        "inference": inference,
        "plain_training": training,
    }}
'''

CATALOG: dict[str, Any] = {
    "raw_iris": {"type": "pandas.CSVDataset", "filepath": "data/01_raw/iris.csv"},
    "iris": {"type": "pandas.ParquetDataset", "filepath": "data/02_intermediate/iris.parquet"},
    "instances": {"type": "pandas.CSVDataset", "filepath": "data/05_model_input/instances.csv"},
    "scaler": {"type": "pickle.PickleDataset", "filepath": "data/06_models/scaler.pkl", "backend": "joblib"},
    "classifier": {"type": "pickle.PickleDataset", "filepath": "data/06_models/classifier.pkl", "versioned": True},
    "label_map": {"type": "json.JSONDataset", "filepath": "data/06_models/label_map.json"},
    "predictions": {"type": "pandas.CSVDataset", "filepath": "data/07_model_output/predictions.csv"},
}

PARAMETERS: dict[str, Any] = {
    "split": {"test_size": 0.3, "seed": 3},
    "model": {"C": 1.0, "max_iter": 300},
    "label_prefix": "iris-",
}

SETTINGS_WITHOUT_PLUGIN_HOOK = 'DISABLE_HOOKS_FOR_PLUGINS = ("kedro-mlflow-starter",)\n'


def make_iris_project(
    root: Path,
    migrated_db: Path | None = None,
    *,
    settings: str = "",
    log_model_kwargs: str = "",
    mlflow_yml: dict[str, Any] | str | None = None,
) -> KedroProject:
    """The iris project under ``root`` (``log_model_kwargs``: source text of a kwarg)."""
    from sklearn.datasets import load_iris

    project = make_project(
        root,
        package=PACKAGE,
        nodes=NODES,
        registry=REGISTRY.replace("{log_model_kwargs}", log_model_kwargs),
        parameters=PARAMETERS,
        catalog=CATALOG,
        settings=settings,
        mlflow_yml=mlflow_yml,
    )
    (project.path / "data/01_raw/raw.csv").unlink(missing_ok=True)
    frame = load_iris(as_frame=True).frame
    frame.columns = [*FEATURES, "species"]
    frame["species"] = frame["species"].map({0: "setosa", 1: "versicolor", 2: "virginica"})
    frame.to_csv(project.path / "data/01_raw/iris.csv", index=False)
    if migrated_db is not None:
        shutil.copy(migrated_db, project.db)
    return project



def isolated_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """A user's shell with this venv first on PATH and no PYTHONPATH (the project is not importable)."""
    env = project_env(extra)
    env.pop("PYTHONPATH", None)
    return env


def bootstrap(project: KedroProject) -> None:
    """Configure ``project`` in this process (what ``kedro`` does before a command)."""
    from kedro.framework.startup import bootstrap_project

    os.environ["KEDRO_DISABLE_TELEMETRY"] = "true"
    for name in [m for m in sys.modules if m == project.package or m.startswith(project.package + ".")]:
        del sys.modules[name]  # another test's copy of the same package
    bootstrap_project(project.path)


def runs_of(client, experiment_name: str) -> list:
    """Runs of the experiment, oldest first."""
    experiment = client.get_experiment_by_name(experiment_name)
    return list(reversed(client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"])))
