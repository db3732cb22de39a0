"""Leaving kedro-viz experiment tracking: a project that used ``tracking.MetricsDataset`` and
``tracking.JSONDataset``, before (its catalog no longer builds) and after the migration table of
docs/migrating-from-kedro-mlflow.md (what lands in MLflow)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.project_factory import make_project
from tests.tracking_helpers import client_for, only_run, output

NODES = '''
import pandas as pd


def evaluate(df: pd.DataFrame) -> dict:
    return {"r2": 0.91, "mae": float(df["a"].mean())}


def describe(df: pd.DataFrame) -> list:
    return list(df.columns)


def report(metrics: dict) -> str:
    return ";".join(f"{key}={value}" for key, value in sorted(metrics.items()))
'''

REGISTRY = '''
from kedro.pipeline import Pipeline, node


def register_pipelines():
    from {package}.nodes import describe, evaluate, report

    return {{"__default__": Pipeline([
        node(evaluate, "raw", "metrics", name="evaluate"),
        node(describe, "raw", "companies_columns", name="describe"),
        node(report, "metrics", "report", name="report"),
    ])}}
'''

RAW = {"type": "pandas.CSVDataset", "filepath": "data/01_raw/raw.csv"}
REPORT = {"type": "text.TextDataset", "filepath": "data/08_reporting/report.txt"}
KEDRO_VIZ_CATALOG = {
    "raw": RAW,
    "metrics": {"type": "tracking.MetricsDataset", "filepath": "data/09_tracking/metrics.json", "versioned": True},
    "companies_columns": {"type": "tracking.JSONDataset", "filepath": "data/09_tracking/companies_columns.json",
                          "versioned": True},
    "report": REPORT,
}
# The migration table, applied entry by entry.
MIGRATED_CATALOG = {
    "raw": RAW,
    "metrics": {"type": "kedro_mlflow_starter.io.MlflowMetricsHistoryDataset", "load_args": {"mode": "value"}},
    "companies_columns": {"type": "kedro_mlflow_starter.io.MlflowArtifactDataset",
                          "dataset": {"type": "json.JSONDataset",
                                      "filepath": "data/09_tracking/companies_columns.json"}},
    "report": REPORT,
}
KEDRO_VIZ_SETTINGS = '''
from kedro_viz.integrations.kedro.sqlite_store import SQLiteStore

SESSION_STORE_CLASS = SQLiteStore
SESSION_STORE_ARGS = {"path": "data"}
'''


def test_a_kedro_viz_tracking_project_migrates_to_mlflow_datasets(tmp_path: Path, migrated_db: Path) -> None:
    project = make_project(tmp_path, package="viz_project", nodes=NODES, registry=REGISTRY, parameters={},
                           catalog=KEDRO_VIZ_CATALOG, settings=KEDRO_VIZ_SETTINGS)
    shutil.copy(migrated_db, project.db)

    before = project.run_in_process("run")
    assert before.returncode != 0 and "kedro_viz" in output(before), output(before)
    project.write(f"src/{project.package}/settings.py", "\n")  # SESSION_STORE_* lines deleted
    catalog_only = project.run_in_process("run")
    assert catalog_only.returncode != 0 and "No module named 'tracking'" in output(catalog_only), output(catalog_only)

    project.write_yaml("conf/base/catalog.yml", MIGRATED_CATALOG)

    after = project.run_in_process("run")

    assert after.returncode == 0, output(after)
    run = only_run(project)
    assert run.data.metrics["metrics.r2"] == 0.91 and run.data.metrics["metrics.mae"] == 1.0
    client = client_for(project)
    assert "companies_columns.json" in [a.path for a in client.list_artifacts(run.info.run_id)]
    assert json.loads((project.path / "data/09_tracking/companies_columns.json").read_text()) == ["a", "b"]
    # a downstream node loads the metrics as {key: number}
    assert (project.path / "data/08_reporting/report.txt").read_text() == "metrics.mae=1.0;metrics.r2=0.91"
