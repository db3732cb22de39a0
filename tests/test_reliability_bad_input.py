"""Bad input seen through `kedro run`, as a user meets it: one clear message, a non-zero
exit when the run cannot go on, no node run when the problem is known up front, and the
user's data untouched. (mlflow.yml problems are in test_config_errors.py, dataset and
pipeline-model definitions in-process in test_io_*.py and test_pipeline_ml*.py; these are
the same cases end to end.)
"""

from __future__ import annotations

import shutil

import pytest

from tests.project_factory import KedroProject, make_project
from tests.tracking_helpers import output, runs_of

PKG = "kedro_mlflow_starter.io."

NODES = '''
import pandas as pd


def double(df: pd.DataFrame, factor: float) -> pd.DataFrame:
    return df * factor


def score(df: pd.DataFrame):
    return "0.9"  # a string where the metric dataset needs a number


def predict(model, df: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"prediction": model.predict(df[["a"]])})
'''

REGISTRY = '''
from kedro.pipeline import Pipeline, node


def register_pipelines():
    from {package}.nodes import double, score

    return {{"__default__": Pipeline([
        node(double, ["raw", "params:factor"], "doubled", name="double"),
        node(score, "doubled", "accuracy", name="score"),
    ])}}
'''

REGISTRY_LOADING_A_MODEL = '''
from kedro.pipeline import Pipeline, node


def register_pipelines():
    from {package}.nodes import double, predict

    return {{"__default__": Pipeline([
        node(double, ["raw", "params:factor"], "doubled", name="double"),
        node(predict, ["champion", "doubled"], "predictions", name="predict"),
    ])}}
'''

REGISTRY_WITH_BAD_FACTORY = '''
from kedro.pipeline import Pipeline, node

from kedro_mlflow_starter import pipeline_ml_factory


def register_pipelines():
    from {package}.nodes import double, predict

    training = Pipeline([node(double, ["raw", "params:factor"], "doubled", name="double")])
    inference = Pipeline([node(predict, ["model", "rows"], "predictions", name="predict")])
    return {{"__default__": pipeline_ml_factory(training, inference, input_name="instances")}}
'''

CATALOG = {
    "raw": {"type": "pandas.CSVDataset", "filepath": "data/01_raw/raw.csv"},
    "doubled": {"type": "pandas.CSVDataset", "filepath": "data/02_intermediate/doubled.csv"},
    "accuracy": {"type": PKG + "MlflowMetricDataset"},
}


def _project(tmp_path, migrated_db, registry: str = REGISTRY, catalog: dict | None = None) -> KedroProject:
    project = make_project(tmp_path, nodes=NODES, registry=registry, catalog=catalog or CATALOG)
    shutil.copy(migrated_db, project.db)
    return project


def _raw(project: KedroProject) -> bytes:
    return (project.path / "data/01_raw/raw.csv").read_bytes()


def test_non_numeric_metric_value_fails_the_run_naming_the_dataset(tmp_path, migrated_db):
    project = _project(tmp_path, migrated_db)
    raw = _raw(project)

    result = project.run_in_process("run")

    assert result.returncode != 0
    text = output(result)
    assert "'accuracy' (MlflowMetricDataset)" in text and "must be a number" in text and "float(score)" in text
    [run] = runs_of(project)
    assert run.info.status == "FAILED" and run.data.metrics == {}
    assert (project.path / "data/02_intermediate/doubled.csv").is_file(), "the earlier node's output was removed"
    assert _raw(project) == raw


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({"type": PKG + "MlflowMetricDatset"}, ["accuracy", "MlflowMetricDatset"]),
        ({"type": PKG + "MlflowModelTrackingDataset", "flavor": "mlflow.sklern"},
         ["Catalog entry 'accuracy' (MlflowModelTrackingDataset) is invalid", "unknown flavor 'mlflow.sklern'"]),
    ],
    ids=["unknown_type", "unknown_flavor"],
)
def test_unknown_dataset_type_or_flavor_fails_before_any_node_runs(tmp_path, migrated_db, entry, expected):
    project = _project(tmp_path, migrated_db, catalog={**CATALOG, "accuracy": entry})
    raw = _raw(project)

    result = project.run_in_process("run")

    assert result.returncode != 0
    for fragment in expected:
        assert fragment in output(result), f"{fragment!r} missing from:\n{output(result)}"
    assert "Running node" not in output(result)
    assert not (project.path / "data/02_intermediate/doubled.csv").exists()
    assert runs_of(project) == []
    assert _raw(project) == raw


def test_registry_model_name_that_does_not_exist_fails_naming_it(tmp_path, migrated_db):
    catalog = {**CATALOG, "champion": {"type": PKG + "MlflowModelRegistryDataset", "model_name": "no-such-model"},
               "predictions": {"type": "pandas.CSVDataset", "filepath": "data/07_model_output/predictions.csv"}}
    project = _project(tmp_path, migrated_db, registry=REGISTRY_LOADING_A_MODEL, catalog=catalog)
    raw = _raw(project)

    result = project.run_in_process("run")

    assert result.returncode != 0
    text = " ".join(output(result).split())  # the traceback wraps at the console's width
    assert "no registered model named 'no-such-model'" in text and "registered_model_name" in text
    [run] = runs_of(project)
    assert run.info.status == "FAILED"
    assert not (project.path / "data/07_model_output/predictions.csv").exists()
    assert _raw(project) == raw


def test_invalid_pipeline_ml_factory_fails_before_any_node_runs(tmp_path, migrated_db):
    project = _project(tmp_path, migrated_db, registry=REGISTRY_WITH_BAD_FACTORY)
    raw = _raw(project)

    result = project.run_in_process("run")

    assert result.returncode != 0
    text = output(result)
    assert "input_name='instances' is not an input" in text and "'rows'" in text
    assert "Running node" not in text
    assert not (project.path / "data/02_intermediate/doubled.csv").exists()
    assert runs_of(project) == []
    assert _raw(project) == raw
