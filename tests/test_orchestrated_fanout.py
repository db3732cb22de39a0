"""Fan-out: one `kedro run --nodes <node>` process per node, in topological waves, all in one
MLflow run opened by `kedro mlflow run open` and closed by `kedro mlflow run close`.

The starter's pipeline, widened with three scoring nodes (its last wave then runs six task
processes at once), against (a) the project's embedded SQLite store and (b) an `mlflow server`
on PostgreSQL with proxied artifacts. Each store sees: one run holding everything every task
logged, params and metric keys equal to those of a plain `kedro run`, the pipeline model, and
honest statuses when a task is killed with SIGTERM (KILLED) or fails (FAILED).

Each task is a process of its own forked from the test process (``fan_out``), so that the six of
the last wave start at once without six interpreters' imports; the task a test SIGTERMs is a
fresh `kedro` process. Airflow's tasks (tests/test_orchestrated_airflow.py and the real
scheduler's test) are fresh processes throughout.
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.orchestrated_fixtures import (
    FANOUT_NODES,
    add_fanout_nodes,
    close_run,
    fan_out,
    new_iris_project,
    open_run,
    predict_in_fresh_interpreter,
    set_tracking_uri,
    start_task,
    task_log,
    the_run,
    waves,
)
from tests.starter_fixtures import INSTANCE_ROWS, PACKAGE, GeneratedProject, assert_ok, iris_frame, kedro_env, \
    run_summary

if TYPE_CHECKING:
    from tests.server_fixtures import MlflowServer

EXPECTED_PARAMS = {"target", "split_options.test_size", "split_options.random_state", "model_options.C",
                   "model_options.max_iter", "fanout.weight_1", "fanout.weight_2", "fanout.weight_3"}
NODES = ["split_data", "fit_preprocessor", "train_model", "evaluate_model", "report", "bundle_model", *FANOUT_NODES]
EXPECTED_METRICS = {"test.accuracy", "test.f1_macro", "fanout_score_1", "fanout_score_2", "fanout_score_3",
                    "time.pipeline", *(f"time.node.{node}" for node in NODES)}
EXPECTED_ARTIFACTS = {"reports/confusion_matrix.png", "reports/classification_report.txt", "kedro/pipeline.json",
                      "kedro/pipeline.svg", "kedro/config/catalog.yml", "kedro/config/parameters.yml",
                      "kedro/config/run.yml",
                      # the run's own copies of the pipeline model's artifacts (issue 17)
                      *(f"kedro/model_artifacts/{name}/{file}" for name in ("classifier", "preprocessor")
                        for file in ("spec.json", f"data/{name}.pkl"))}


@dataclass
class FannedOut:
    project: GeneratedProject
    tracking_uri: str
    run_id: str
    plan: list[list[str]]
    codes: dict[str, int]
    close_output: str
    logs: Path


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def fanned_out(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FannedOut]:
    """The widened starter project run as one task process per node against each store."""
    root = tmp_path_factory.mktemp(f"fanout-{request.param}")
    project = new_iris_project(root / "work", root / "home", request.getfixturevalue("generated_tree"))
    add_fanout_nodes(project)
    if request.param == "postgres":
        server: MlflowServer = request.getfixturevalue("pg_mlflow_server")
        tracking_uri = server.uri
        set_tracking_uri(project, tracking_uri)
    else:
        tracking_uri = project.tracking_uri
    plan = waves(project)
    run_id = open_run(project)
    logs = root / "logs"
    logs.mkdir()
    codes = fan_out(project, run_id, plan, logs)
    closed = close_run(project, run_id)
    yield FannedOut(project, tracking_uri, run_id, plan, codes, closed.stdout, logs)


def test_the_last_wave_runs_six_processes_at_once(fanned_out: FannedOut) -> None:
    plan = fanned_out.plan
    assert sorted(node for wave in plan for node in wave) == sorted(NODES)
    assert max(len(wave) for wave in plan) >= 4, plan
    assert all(code == 0 for code in fanned_out.codes.values()), {
        node: task_log(fanned_out.project, node, fanned_out.logs) for node, code in fanned_out.codes.items() if code}


def test_every_task_lands_in_one_finished_run_with_the_pipeline_model(fanned_out: FannedOut, tmp_path: Path) -> None:
    run = the_run(fanned_out.tracking_uri, fanned_out.run_id)
    assert run["status"] == "FINISHED", fanned_out.close_output
    assert set(run["params"]) == EXPECTED_PARAMS
    assert set(run["metrics"]) == EXPECTED_METRICS
    assert set(run["artifacts"]) == EXPECTED_ARTIFACTS
    tasks = {key[len("kedro.task."):]: value for key, value in run["tags"].items() if key.startswith("kedro.task.")}
    assert tasks == {node: "FINISHED" for wave in fanned_out.plan for node in wave}
    # the step that made the run, not a `kedro run` of the whole pipeline that never ran
    assert run["tags"]["kedro.command"] == "kedro mlflow run open --pipeline=__default__"
    assert re.fullmatch(r"default \d\d:\d\d:\d\d", run["name"]), run["name"]  # named like a plain kedro run
    assert {k for k in run["tags"] if k.startswith("kedro.node.")} == {f"kedro.node.{node}" for node in NODES}
    assert "kedro.failed_tasks" not in run["tags"]
    for node in ("split_data", "score_2"):  # no task raised about params already logged
        assert "already logged" not in task_log(fanned_out.project, node, fanned_out.logs)

    import json

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=fanned_out.tracking_uri)
    # the whole pipeline's lineage, written once by open/close, not one task's slice
    assert len(client.get_metric_history(run["id"], "time.pipeline")) == 1
    graph = json.loads(Path(client.download_artifacts(run["id"], "kedro/pipeline.json", str(tmp_path))).read_text())
    assert {node["name"] for node in graph["pipeline"]} == set(NODES)
    models = client.search_logged_models(experiment_ids=[client.get_run(run["id"]).info.experiment_id])
    assert len(models) == 2 and {m.source_run_id for m in models} == {fanned_out.run_id}  # classifier, pipeline
    closed = re.search(r"pipeline model (models:/[\w-]+)", fanned_out.close_output)
    assert closed and closed.group(1) in {f"models:/{m.model_id}" for m in models}, fanned_out.close_output
    species = predict_in_fresh_interpreter(fanned_out.tracking_uri, closed.group(1),
                                           fanned_out.project.path / "data/05_model_input/instances.csv",
                                           kedro_env(fanned_out.project.home), tmp_path / "model")
    assert species == iris_frame().loc[list(INSTANCE_ROWS), "species"].tolist()


def test_a_plain_kedro_run_logs_the_same_params_and_metric_keys(fanned_out: FannedOut) -> None:
    project = fanned_out.project
    group = the_run(fanned_out.tracking_uri, fanned_out.run_id)
    assert_ok(project.kedro_in_process("run"), "plain kedro run")
    runs = run_summary(fanned_out.tracking_uri, PACKAGE)["runs"]
    plain = next(r for r in runs if r["id"] != fanned_out.run_id)
    assert plain["status"] == "FINISHED"
    assert plain["params"] == group["params"]
    assert set(plain["metrics"]) == set(group["metrics"])
    assert set(plain["artifacts"]) == set(group["artifacts"])
    _delete_run(fanned_out.tracking_uri, plain["id"])


def test_a_task_killed_with_sigterm_makes_the_run_killed(fanned_out: FannedOut, tmp_path: Path) -> None:
    """Two tasks of the last wave again (the earlier waves' outputs are on disk), one SIGTERMed mid-node."""
    project = fanned_out.project
    run_id = open_run(project)
    last = ["score_1", "score_2"]
    env = {"FANOUT_MARKER_DIR": str(tmp_path), "FANOUT_SLOW": "score_2"}
    running = {node: start_task(project, node, run_id, env, tmp_path) for node in last}
    marker = tmp_path / "score_2.started"
    deadline = time.monotonic() + 180
    while not marker.exists() and time.monotonic() < deadline and running["score_2"].poll() is None:
        time.sleep(0.2)
    assert marker.exists(), task_log(project, "score_2", tmp_path)
    running["score_2"].send_signal(signal.SIGTERM)
    codes = {node: process.wait(timeout=180) for node, process in running.items()}
    assert codes["score_2"] != 0
    assert all(code == 0 for node, code in codes.items() if node != "score_2"), codes
    closed = close_run(project, run_id)
    assert "KILLED" in closed.stdout and "score_2" in closed.stdout, closed.stdout
    run = _run(fanned_out.tracking_uri, run_id)
    assert run.info.status == "KILLED"
    assert run.data.tags["kedro.task.score_2"] == "KILLED"
    assert run.data.tags["kedro.killed_tasks"] == "score_2"
    assert {k for k in run.data.metrics if not k.startswith("time.")} == {"fanout_score_1"}  # the other task's
    _delete_run(fanned_out.tracking_uri, run_id)


def test_a_failing_task_makes_the_run_failed_and_names_it(fanned_out: FannedOut, tmp_path: Path) -> None:
    project = fanned_out.project
    run_id = open_run(project)
    codes = fan_out(project, run_id, [["score_1", "score_3"]], tmp_path, {"FANOUT_FAIL": "score_3"})
    assert codes["score_3"] != 0 and all(code == 0 for node, code in codes.items() if node != "score_3"), codes
    closed = close_run(project, run_id)
    assert "FAILED" in closed.stdout and "score_3" in closed.stdout and "failed on purpose" in closed.stdout
    run = _run(fanned_out.tracking_uri, run_id)
    assert run.info.status == "FAILED"
    assert run.data.tags["kedro.failed_tasks"] == "score_3"
    assert run.data.tags["kedro.task.score_3"].startswith("FAILED: RuntimeError: score_3 failed on purpose")
    assert "score_3" in run.data.tags["mlflow.note.content"]
    assert {k for k in run.data.metrics if not k.startswith("time.")} == {"fanout_score_1"}
    # a FAILED run gets no pipeline model: its artifacts may be incomplete
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=fanned_out.tracking_uri)
    assert [m for m in client.search_logged_models(experiment_ids=[run.info.experiment_id])
            if m.source_run_id == run_id] == []
    _delete_run(fanned_out.tracking_uri, run_id)


def _run(tracking_uri: str, run_id: str):  # noqa: ANN202
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri).get_run(run_id)


def _delete_run(tracking_uri: str, run_id: str) -> None:
    """Keep 'exactly one run' true for the tests that read the first group run."""
    from mlflow import MlflowClient

    MlflowClient(tracking_uri=tracking_uri).delete_run(run_id)


def test_a_task_with_another_env_is_refused_and_open_takes_nodes(tmp_path: Path,
                                                                 generated_tree: dict[str, bytes]) -> None:
    """A task whose --env is not the run's would log another configuration's records into it: it
    is refused, naming both envs and the fix. `open --nodes` narrows the run as `kedro run --nodes`
    does: `close` then expects those nodes only."""
    from mlflow import MlflowClient

    project = new_iris_project(tmp_path / "work", tmp_path / "home", generated_tree)
    (project.path / "conf" / "staging").mkdir()
    client = MlflowClient(tracking_uri=project.tracking_uri)

    staging_run = open_run(project, "--env", "staging")
    refused = project.kedro_in_process("run", "--nodes", "split_data", env={"MLFLOW_RUN_ID": staging_run})
    text = refused.stdout + refused.stderr
    assert refused.returncode != 0, text
    assert "runs with --env local" in text and "--env staging" in text, text[-3000:]
    assert "Run the task with `--env staging`" in text and "Traceback" not in text
    tags = client.get_run(staging_run).data.tags
    assert not [key for key in tags if key.startswith("kedro.task.")], tags  # the run was not touched
    assert client.get_run(staging_run).info.status == "RUNNING"

    no_node = project.kedro_in_process("mlflow", "run", "open", "--tags", "nightly")  # the starter's nodes have no tags
    assert no_node.returncode != 0 and "No node of the pipeline has the tags nightly" in no_node.stderr, \
        no_node.stderr[-2000:]

    narrowed = open_run(project, "--nodes", "split_data")
    run = client.get_run(narrowed)
    assert run.data.tags["kedro.command"] == "kedro mlflow run open --pipeline=__default__ --nodes=split_data"
    assert run.data.tags["kedro.filter.nodes"] == "split_data"
    assert set(run.data.params) == {"target", "split_options.test_size", "split_options.random_state"}  # its nodes'
    task = project.kedro_in_process("run", "--nodes", "split_data", env={"MLFLOW_RUN_ID": narrowed})
    assert_ok(task, "the split_data task")
    closed = close_run(project, narrowed)
    assert f"MLflow run {narrowed} FINISHED" in closed.stdout, closed.stdout  # no other node was expected
    assert client.get_run(narrowed).info.status == "FINISHED"
    assert "kedro.missing_nodes" not in client.get_run(narrowed).data.tags
