"""A run opened by someone else (an orchestrator, a notebook) and fluent calls in nodes."""

from __future__ import annotations

from tests.project_factory import project_env, script_result
from tests.tracking_helpers import client_for, only_run, output, runs_of

FLUENT_NODES = '''
import mlflow
import pandas as pd


def double(df: pd.DataFrame, factor: float) -> pd.DataFrame:
    mlflow.log_metric("rows_seen", float(len(df)))
    return df * factor


def total(df: pd.DataFrame, model_options: dict) -> float:
    return float(df.to_numpy().sum()) + model_options["bias"]
'''


def _in_an_open_run(project) -> dict:
    """The default pipeline run in a session inside a run the orchestrator opened ("outer", in
    the experiment "orchestrator"), in a fresh interpreter."""
    return script_result("run_session_in_an_open_run",
                         {"project_path": str(project.path), "tracking_uri": project.tracking_uri,
                          "experiment": "orchestrator", "run_name": "outer"},
                         cwd=project.path, env=project_env(), timeout=300)


def test_an_active_run_is_joined_and_left_open(project):
    done = _in_an_open_run(project)
    assert done["active_run_id"] == done["outer_run_id"]
    assert done["outer_status"] == "RUNNING", "the orchestrator's run was closed"
    (run,) = runs_of(project, experiment="orchestrator")
    assert run.info.run_name == "outer" and run.info.status == "FINISHED"
    assert run.data.params["factor"] == "2.0"
    assert run.data.tags["kedro.pipeline_names"] == "__default__"
    assert runs_of(project) == [], "a second run was opened"


def test_nested_false_opens_a_separate_run(project):
    project.write_yaml("conf/base/mlflow.yml", {"tracking": {"run": {"nested": False}}})
    _in_an_open_run(project)
    assert "factor" not in only_run(project, experiment="orchestrator").data.params
    assert only_run(project).info.status == "FINISHED"


def test_mlflow_run_id_from_the_environment_is_joined(project):
    client = client_for(project)
    # artifacts under the project (a relative default would resolve against the test's cwd)
    experiment_id = client.create_experiment("scheduler", artifact_location=(project.path / "mlartifacts").as_uri())
    handed_down = client.create_run(experiment_id, run_name="scheduled")
    result = project.run_in_process("run", env={"MLFLOW_RUN_ID": handed_down.info.run_id})
    assert result.returncode == 0, output(result)
    run = client.get_run(handed_down.info.run_id)
    assert run.data.params["factor"] == "2.0"
    assert run.info.status == "RUNNING", "the scheduler's run must stay open for the scheduler to close"
    assert runs_of(project) == []


def test_fluent_mlflow_calls_in_nodes_land_in_the_kedro_run(project):
    project.write("src/demo_project/nodes.py", FLUENT_NODES)
    result = project.run_in_process("run")
    assert result.returncode == 0, output(result)
    run = only_run(project)
    assert run.info.status == "FINISHED"
    assert run.data.metrics["rows_seen"] == 3.0
    assert len(runs_of(project, experiment="Default")) == 0
