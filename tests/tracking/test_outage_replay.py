"""An outage mid-run, then `kedro mlflow run replay`: the run ends up as if there had been none.

A real `mlflow server` (SQLite store, proxied artifacts) is killed while the team project's
`fit` node runs: its model, the predictions artifact, the r2 metric, the pipeline model and
the run's lineage cannot be logged. The run keeps them in `.kedro-mlflow/pending/<run id>/`
of the project. The server is restarted on the same store (another port, as after a
redeploy), and `kedro mlflow run replay` logs everything into the run and ends it FINISHED.
The replayed run is then compared with a run of the same project that had no outage:
params, metrics with their steps, the artifacts, the logged and the registered models.
The run with the outage is a `kedro run` subprocess; the run without one and the replays run
in the test process.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.project_factory import KEDRO, project_env
from tests.server_fixtures import CATALOG, all_artifacts, make_team_project, start_server
from tests.server_fixtures import REGISTRY as TEAM_REGISTRY
from tests.tracking_helpers import output

# The team project's registry, its pipeline model registered as `team_pipeline` (one pipeline only).
REGISTRY = TEAM_REGISTRY.replace(
    'input_name="instances")',
    'input_name="instances",\n                                      log_model_kwargs={{"registered_model_name": "team_pipeline"}})',
).replace(', "training": training_ml', "")
CATALOG_REGISTERED = {**CATALOG, "regressor_model": {**CATALOG["regressor_model"],
                                                     "save_args": {"registered_model_name": "team_regressor"}}}
URI_VARIABLE = "TEAM_TRACKING_URI"


def _kedro(project: Any, uri: str, *args: str) -> subprocess.CompletedProcess:
    """``kedro ARGS`` in the test process, the project tracking to ``uri``."""
    return project.run_in_process(*args, env={URI_VARIABLE: uri})


def _run_with_outage_at_fit(project: Any, server: Any, pause: Path) -> tuple[subprocess.Popen, str, float]:
    """`kedro run`, the server killed while `fit` runs; (process, its output, seconds from the kill to its end)."""
    env = project_env({URI_VARIABLE: server.uri, "TEST_PAUSE_DIR": str(pause), "TEST_PAUSE_STEP": "fit"})
    process = subprocess.Popen([KEDRO, "run"], cwd=project.path, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while not (pause / "fit.started").exists():
            assert process.poll() is None, process.stdout.read()
            assert time.monotonic() < deadline, "the run never reached the fit node"
            time.sleep(0.2)
        server.kill()  # params are logged; the model, artifact, metric, pipeline model and lineage are not
        killed = time.monotonic()
        (pause / "fit.go").write_text("")
        text, _ = process.communicate(timeout=300)
        return process, text, time.monotonic() - killed
    finally:
        if process.poll() is None:
            process.kill()


def _layout(client: Any, run_id: str) -> dict[str, Any]:
    """What a run holds, comparable between two runs (timings' values differ, their keys and steps not)."""
    run = client.get_run(run_id)
    metrics = {}
    for key in run.data.metrics:
        history = client.get_metric_history(run_id, key)
        metrics[key] = sorted((m.step, "timing" if key.startswith("time.") else m.value) for m in history)
    models = client.search_logged_models([run.info.experiment_id], filter_string=f"source_run_id = '{run_id}'")
    registered = {}
    for name in ("team_regressor", "team_pipeline"):
        versions = [v for v in client.search_model_versions(f"name = '{name}'") if v.run_id == run_id]
        registered[name] = len(versions)
    return {
        "status": run.info.status,
        "params": run.data.params,
        "metrics": metrics,
        "artifacts": all_artifacts(client, run_id),
        "models": sorted((m.name, str(m.status).rpartition(".")[2]) for m in models),
        "registered": registered,
        "inputs": sorted(d.dataset.name for d in run.inputs.dataset_inputs),
    }


def test_an_outage_is_replayed_into_the_run_which_then_equals_a_run_without_outage(tmp_path, migrated_db):
    server_root = tmp_path / "server"
    server_root.mkdir()
    shutil.copy(migrated_db, server_root / "server.db")
    server = start_server(server_root)
    project = make_team_project(tmp_path, "${oc.env:" + URI_VARIABLE + "}", catalog=CATALOG_REGISTERED,
                                registry=REGISTRY)
    pending_root = project.path / ".kedro-mlflow" / "pending"
    try:
        normal = _kedro(project, server.uri, "run")
        assert normal.returncode == 0, output(normal)
        pause = tmp_path / "pause"
        pause.mkdir()
        process, text, after_kill = _run_with_outage_at_fit(project, server, pause)
    finally:
        server.stop()

    assert process.returncode != 0, text
    assert "Traceback" not in text
    [run_dir] = list(pending_root.iterdir())
    run_id = run_dir.name
    assert f"kedro mlflow run replay --run-id {run_id}" in text, text
    assert "kedro mlflow stale-runs --mark-killed" not in text
    kept = (run_dir / "items.jsonl").read_text()
    for what in ("model 'regressor_model'", "artifact of pandas.CSVDataset", "metric 'r2'", "the pipeline model",
                 "the run's lineage"):
        assert what in kept, f"{what} not kept for replay:\n{kept}"
    assert list((run_dir / "files").rglob("MLmodel")), "the model folder was not kept"
    assert list((run_dir / "files").rglob("predictions.csv")), "the artifact was not kept"
    # The first failed call pays the retry cycle (~20 s); the later ones are one refused connection each
    # (test_once_an_outage_is_recorded_a_call_costs_one_refused_connection): the run does not hang.
    print(f"from the kill to the end of kedro run: {after_kill:.1f} s")
    assert after_kill < 90, f"{after_kill:.0f} s from the kill to the end of the run:\n{text}"

    down = _kedro(project, server.uri, "mlflow", "run", "replay")  # too early: the server is still down
    assert down.returncode == 1 and "Traceback" not in output(down) and len(output(down).splitlines()) < 12, output(down)
    assert f"MLflow tracking server {server.uri} is still unreachable" in output(down), output(down)
    assert "Run `kedro mlflow run replay` again once the server answers." in " ".join(output(down).split())
    assert (run_dir / "items.jsonl").read_text() == kept

    server = start_server(server_root)  # the same store, on another port
    try:
        replayed = _kedro(project, server.uri, "mlflow", "run", "replay")
        assert replayed.returncode == 0, output(replayed)
        assert f"MLflow run {run_id}:" in replayed.stdout and f"run FINISHED" in replayed.stdout, replayed.stdout
        assert not pending_root.exists() and not (project.path / ".kedro-mlflow").exists()

        client = server.client
        [normal_run, outage_run] = sorted(
            client.search_runs([client.get_experiment_by_name("team_project").experiment_id]),
            key=lambda run: run.info.start_time)
        assert outage_run.info.run_id == run_id
        expected = _layout(client, normal_run.info.run_id)
        got = _layout(client, run_id)
        print(f"the replayed run: {got}")
        assert got == expected
        assert got["status"] == "FINISHED"
        assert got["models"] == [("model", "READY"), ("regressor_model", "READY")]
        assert got["registered"] == {"team_regressor": 1, "team_pipeline": 1}
        assert "r2" in got["metrics"] and "predictions.csv" in " ".join(got["artifacts"])

        again = _kedro(project, server.uri, "mlflow", "run", "replay")  # nothing left: says so, changes nothing
        assert again.returncode == 0 and "Nothing to replay" in again.stdout, output(again)
        assert _layout(client, run_id) == got
    finally:
        server.stop()


def test_once_an_outage_is_recorded_a_call_costs_one_refused_connection(tmp_path, monkeypatch):
    """MLflow's own HTTP retries (2, backoff factor 1: seconds per call) are skipped while the
    server is known down; the run's setting is back once the call is made."""
    from mlflow import MlflowClient

    from kedro_mlflow_starter.tracking.current import ENV_FAILURE_LOG
    from kedro_mlflow_starter.tracking.failures import call_with_retry
    from tests.project_factory import free_port

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    client = MlflowClient(tracking_uri=f"http://127.0.0.1:{free_port()}")  # nothing listens there
    run_id = "0" * 32

    start = time.monotonic()
    try:
        client.get_run(run_id)
    except Exception as error:  # noqa: BLE001 - MLflow's error for a refused connection
        assert "Connection refused" in str(error) or "Max retries" in str(error), error
    with_mlflow_retries = time.monotonic() - start

    ledger = tmp_path / "failures.jsonl"
    ledger.write_text('{"what": "an earlier item", "local_path": null, "error": "refused"}\n')
    monkeypatch.setenv(ENV_FAILURE_LOG, str(ledger))
    start = time.monotonic()
    try:
        call_with_retry(lambda: client.get_run(run_id))
    except Exception as error:  # noqa: BLE001
        assert "Connection refused" in str(error) or "Max retries" in str(error), error
    known_down = time.monotonic() - start

    print(f"one call to a stopped server: {with_mlflow_retries:.2f} s with MLflow's retries, "
          f"{known_down:.3f} s once the outage is known")
    assert with_mlflow_retries >= 1.5
    assert known_down < 0.5
    import os

    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "2"


def test_a_replay_cut_short_is_resumed_without_logging_anything_twice(tmp_path, migrated_db, monkeypatch):
    """An item that cannot be replayed (here: its kept copy is gone) stays kept and the run is
    FAILED; the next replay logs only what is left, then the run gets the status it earned."""
    from mlflow import MlflowClient

    from kedro_mlflow_starter.tracking.current import ENV_PENDING_DIR
    from kedro_mlflow_starter.tracking.replay import Session, keep_for_replay, read_items, replay_run, seal

    shutil.copy(migrated_db, tmp_path / "mlflow.db")
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("replayed", artifact_location=(tmp_path / "artifacts").as_uri())
    run_id = client.create_run(experiment).info.run_id
    folder = tmp_path / "project" / ".kedro-mlflow" / "pending" / run_id
    monkeypatch.setenv(ENV_PENDING_DIR, str(folder))
    report = tmp_path / "report.txt"
    report.write_text("kept while the server was down\n")
    keep_for_replay("metric 'loss'", None, {"kind": "metrics", "points": [["loss", 0.5, 0, 1000], ["loss", 0.25, 1, 2000]]})
    keep_for_replay("artifact report.txt", str(report), {"kind": "artifact", "artifact_path": "reports"})
    keep_for_replay("metric 'acc'", None, {"kind": "metrics", "points": [["acc", 0.9, 0, 3000]]})
    seal(folder, run_id, earned="FINISHED", closed_as="FAILED")
    [kept_copy] = (folder / "files").rglob("report.txt")
    moved = kept_copy.with_name("moved-away.txt")
    kept_copy.rename(moved)
    no_session = Session(lambda env, params: pytest.fail("no Kedro session is needed for metrics and artifacts"))

    first = replay_run(client, folder, run_id, no_session)

    assert first.replayed == ["metric 'loss'", "metric 'acc'"] and list(first.failed) == ["artifact report.txt"]
    assert first.status == "FAILED" and client.get_run(run_id).info.status == "FAILED"
    assert [item["what"] for item in read_items(folder)] == ["artifact report.txt"]

    moved.rename(kept_copy)
    second = replay_run(client, folder, run_id, no_session)

    assert second.replayed == ["artifact report.txt"] and not second.failed and second.status == "FINISHED"
    assert client.get_run(run_id).info.status == "FINISHED"
    assert [(m.step, m.value) for m in client.get_metric_history(run_id, "loss")] == [(0, 0.5), (1, 0.25)]
    assert len(client.get_metric_history(run_id, "acc")) == 1
    assert [a.path for a in client.list_artifacts(run_id, "reports")] == ["reports/report.txt"]
    assert not (tmp_path / "project" / ".kedro-mlflow").exists()


def test_a_group_task_hit_by_an_outage_gets_its_outcome_from_the_replay_and_close_finishes_the_run(
        tmp_path, migrated_db, monkeypatch):
    """The outage kept a task's metric and its outcome tags from the group run; once replayed, `run close`
    sees every node reported and ends the run FINISHED (it failed it, naming the task, before)."""
    from mlflow import MlflowClient

    from kedro_mlflow_starter.tracking.current import ENV_PENDING_DIR
    from kedro_mlflow_starter.tracking.orchestrated import ORCHESTRATED_TAG, derive_outcome, record_task_outcome
    from kedro_mlflow_starter.tracking.replay import Session, keep_for_replay, replay_run, seal

    shutil.copy(migrated_db, tmp_path / "mlflow.db")
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("group", artifact_location=(tmp_path / "artifacts").as_uri())
    run_id = client.create_run(experiment, tags={ORCHESTRATED_TAG: "true"}).info.run_id
    record_task_outcome(client, run_id, "split", "FINISHED", nodes=["split"])
    folder = tmp_path / "project" / ".kedro-mlflow" / "pending" / run_id
    monkeypatch.setenv(ENV_PENDING_DIR, str(folder))
    keep_for_replay("metric 'loss'", None, {"kind": "metrics", "points": [["loss", 0.5, 0, 1000]]})
    seal(folder, run_id, earned="FINISHED", closed_as="FAILED", owned=False, task={"label": "train", "nodes": ["train"]})
    before = derive_outcome(client.get_run(run_id).data.tags, "FINISHED", expected_nodes=["split", "train"])
    assert before.status == "FAILED" and "train" in before.describe()

    result = replay_run(client, folder, run_id, Session(lambda env, params: pytest.fail("no session needed")))

    run = client.get_run(run_id)
    assert result.replayed == ["metric 'loss'"] and result.status is None and run.info.status == "RUNNING"
    assert run.data.tags["kedro.task.train"] == "FINISHED" and run.data.tags["kedro.node.train"] == "FINISHED"
    after = derive_outcome(run.data.tags, "FINISHED", expected_nodes=["split", "train"])
    assert after.status == "FINISHED", after.describe()


def test_replay_logs_into_the_store_of_the_env_the_run_ran_with(tmp_path, migrated_db, monkeypatch):
    """`kedro run --env other` kept items for its run in other.db's store; a plain `kedro mlflow run replay`
    finds that store, and an --env naming another store says so instead of a traceback."""
    from mlflow import MlflowClient

    from kedro_mlflow_starter.tracking.current import ENV_PENDING_DIR
    from kedro_mlflow_starter.tracking.replay import keep_for_replay, seal
    from tests.project_factory import make_project

    project = make_project(tmp_path, mlflow_yml={"server": {"mlflow_tracking_uri": "sqlite:///local.db"}})
    project.write_yaml("conf/other/mlflow.yml", {"server": {"mlflow_tracking_uri": "sqlite:///other.db"}})
    for name in ("local.db", "other.db"):
        shutil.copy(migrated_db, project.path / name)
    other = MlflowClient(f"sqlite:///{project.path / 'other.db'}")
    experiment = other.create_experiment("demo_project", artifact_location=(project.path / "mlartifacts").as_uri())
    run_id = other.create_run(experiment).info.run_id
    folder = project.path / ".kedro-mlflow" / "pending" / run_id
    with monkeypatch.context() as patch:
        patch.setenv(ENV_PENDING_DIR, str(folder))
        keep_for_replay("metric 'r2'", None, {"kind": "metrics", "points": [["r2", 0.75, 0, 1000]]})
    seal(folder, run_id, earned="FINISHED", closed_as="FAILED", env="other")

    wrong = project.run_in_process("mlflow", "run", "replay", "--env", "local")
    assert wrong.returncode == 1 and "Traceback" not in output(wrong), output(wrong)
    assert f"MLflow run {run_id} is not in sqlite:///" in output(wrong) and "the --env the run ran with" in output(wrong)
    assert folder.is_dir()

    replayed = project.run_in_process("mlflow", "run", "replay")
    assert replayed.returncode == 0, output(replayed)
    run = other.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.metrics == {"r2": 0.75}
    local = MlflowClient(f"sqlite:///{project.path / 'local.db'}")
    assert [e.name for e in local.search_experiments()] == ["Default"], "the replay touched the default env's store"


def test_a_server_gone_during_the_replay_is_one_error_and_keeps_what_is_left(tmp_path, migrated_db, monkeypatch):
    """The server answers the replay's health check, then is gone (stopped right after: a second outage) when
    the replay's first call reaches it: one Error that says what stays kept, not a traceback."""
    import http.server
    import threading

    from mlflow import MlflowClient

    from kedro_mlflow_starter.tracking.current import ENV_PENDING_DIR
    from kedro_mlflow_starter.tracking.replay import ITEMS, keep_for_replay, seal
    from tests.project_factory import free_port, make_project

    class AnswersHealthOnce(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()
            self.wfile.write(b"OK")

        def log_message(self, *args: object) -> None:
            pass

    port = free_port()
    server = http.server.HTTPServer(("127.0.0.1", port), AnswersHealthOnce)
    serving = threading.Thread(target=lambda: (server.handle_request(), server.server_close()))
    serving.start()
    project = make_project(tmp_path, mlflow_yml={"server": {"mlflow_tracking_uri": f"http://127.0.0.1:{port}"}})
    shutil.copy(migrated_db, tmp_path / "kept-for.db")
    client = MlflowClient(f"sqlite:///{tmp_path / 'kept-for.db'}")  # only to make a real run id
    run_id = client.create_run(client.create_experiment("demo_project")).info.run_id
    folder = project.path / ".kedro-mlflow" / "pending" / run_id
    with monkeypatch.context() as patch:
        patch.setenv(ENV_PENDING_DIR, str(folder))
        keep_for_replay("metric 'r2'", None, {"kind": "metrics", "points": [["r2", 0.75, 0, 1000]]})
    seal(folder, run_id, earned="FINISHED", closed_as="FAILED")
    kept = (folder / ITEMS).read_text()

    result = project.run_in_process("mlflow", "run", "replay", env={"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"})
    serving.join(timeout=10)

    text = output(result)
    assert result.returncode == 1 and "Traceback" not in text and len(text.splitlines()) < 12, text
    assert f"The tracking server went away while run {run_id} was replayed" in text, text
    assert "Connection refused" in text and "stays there" in " ".join(text.split()), text
    assert (folder / ITEMS).read_text() == kept
