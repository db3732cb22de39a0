"""MlflowHook driven in process by Kedro itself: ``bootstrap_project`` then
``KedroSession.create(...).run()`` on a generated project with a real SQLite store, as
kedro-mlflow's and kedro-airflow's own suites do (no ``kedro`` subprocess)."""

from __future__ import annotations

import logging
import os
import shutil

import pytest

from tests.pipeline_ml_fixtures import make_iris_project
from tests.project_factory import free_port, make_project, run_session_in_process
from tests.tracking_helpers import client_for, only_run, runs_of

FAILING_NODES = "def double(df, factor):\n    raise ValueError('boom in node')\n\ndef total(df, o):\n    return 1.0\n"


def _fluent_state_is_clean() -> None:
    import mlflow

    assert mlflow.active_run() is None
    assert not {"MLFLOW_RUN_ID", "KEDRO_MLFLOW_RUN_ID"} & set(os.environ)


def test_a_tracked_session_logs_params_tags_metrics_and_the_pipeline_model(tmp_path, migrated_db):
    project = make_iris_project(tmp_path, migrated_db)

    run_session_in_process(project)

    run = only_run(project, experiment="iris_ml")
    assert run.info.status == "FINISHED"
    assert run.data.params == {"model": '{"C": 1.0, "max_iter": 300}', "split": '{"seed": 3, "test_size": 0.3}'}
    tags = run.data.tags
    assert tags["kedro.pipeline_names"] == "__default__" and tags["kedro.runner"] == "SequentialRunner"
    assert tags["kedro.command"] == "kedro run" and tags["kedro.package_name"] == "iris_ml"
    assert tags["kedro.pid"] == str(os.getpid()), "the session ran in this process"
    assert {f"time.node.{name}" for name in ("clean", "split", "fit_scaler", "fit")} | {"time.pipeline"} <= set(
        run.data.metrics)
    client = client_for(project)
    [model] = client.search_logged_models(experiment_ids=[run.info.experiment_id])
    assert model.source_run_id == run.info.run_id
    assert (project.path / "data/06_models/scaler.pkl").is_file()
    _fluent_state_is_clean()


def test_a_failing_node_fails_the_session_and_the_run(tmp_path, migrated_db):
    project = make_project(tmp_path, nodes=FAILING_NODES)
    shutil.copy(migrated_db, project.db)

    with pytest.raises(ValueError, match="boom in node"):
        run_session_in_process(project)

    run = only_run(project)
    assert run.info.status == "FAILED"
    assert run.info.end_time is not None
    assert run.data.params["factor"] == "2.0"
    _fluent_state_is_clean()


def test_a_pipeline_with_tracking_disabled_runs_without_a_run(tmp_path, migrated_db, caplog):
    project = make_project(tmp_path, mlflow_yml={"tracking": {"disable_tracking": {"pipelines": ["processing"]}}})
    shutil.copy(migrated_db, project.db)

    with caplog.at_level(logging.INFO, logger="kedro_mlflow_starter"):
        run_session_in_process(project, pipeline_names=["processing"])

    assert runs_of(project) == []
    assert (project.path / "data/02_intermediate/doubled.csv").is_file()
    assert "not tracked" in caplog.text
    _fluent_state_is_clean()


def test_an_unreachable_store_with_run_untracked_runs_the_pipeline_untracked(tmp_path, caplog):
    uri = f"http://127.0.0.1:{free_port()}"
    project = make_project(tmp_path, mlflow_yml={"server": {"mlflow_tracking_uri": uri, "on_unreachable": "run_untracked"}})

    with caplog.at_level(logging.INFO, logger="kedro_mlflow_starter"):
        run_session_in_process(project)

    assert (project.path / "data/02_intermediate/doubled.csv").is_file()
    assert f"MLflow tracking server {uri} is unreachable" in caplog.text
    assert "the pipeline ran UNTRACKED" in caplog.text
    assert not project.db.exists()
    _fluent_state_is_clean()
