"""Tracking server faults: unreachable at start, silent, and killed in the middle of a run.

The runs whose server is down or silent from the start run in the test process (the same CLI and
output); the run whose server is killed in the middle is a `kedro run` subprocess: stale-runs finds
it afterwards because its process is gone.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.project_factory import KEDRO, project_env
from tests.project_factory import free_port
from tests.server_fixtures import LOCAL_OUTPUTS, make_team_project, start_server
from tests.tracking_helpers import output

HANG_GUARD = 60  # seconds: `kedro run` must give up on a bad server well before this


def _run_guarded(project, guard: float = HANG_GUARD) -> subprocess.CompletedProcess[str]:
    """`kedro run` in the test process, failed if it takes longer than ``guard`` seconds."""
    start = time.monotonic()
    result = project.run_in_process("run")
    assert time.monotonic() - start < guard, f"kedro run took {time.monotonic() - start:.0f} s:\n{output(result)}"
    return result


def _error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in output(result).splitlines() if line.startswith("Error: ")]


def test_unreachable_server_stops_the_run_before_any_node_with_one_line(tmp_path):
    uri = f"http://127.0.0.1:{free_port()}"
    project = make_team_project(tmp_path, uri)
    raw_before = (project.path / "data/01_raw/raw.csv").read_bytes()

    result = _run_guarded(project)

    assert result.returncode != 0
    [line] = _error_lines(result)
    assert uri in line and "unreachable" in line and "Connection refused" in line
    assert "Check that the server is running" in line and "server.mlflow_tracking_uri" in line
    assert "server.on_unreachable: run_untracked" in line
    assert "Traceback" not in output(result) and "───" not in output(result)
    assert "Running node" not in output(result)
    for relative in LOCAL_OUTPUTS:
        assert not (project.path / relative).exists(), f"a node ran and wrote {relative}"
    assert (project.path / "data/01_raw/raw.csv").read_bytes() == raw_before


def test_a_server_that_never_answers_is_given_up_on_after_connect_timeout(tmp_path):
    with socket.socket() as silent:  # accepts connections (backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        uri = f"http://127.0.0.1:{silent.getsockname()[1]}"
        project = make_team_project(tmp_path, uri, mlflow_yml={"server": {"connect_timeout": 2}})
        result = _run_guarded(project)

    assert result.returncode != 0
    [line] = _error_lines(result)
    assert uri in line and "no answer within server.connect_timeout = 2 s" in line
    assert not (project.path / LOCAL_OUTPUTS[0]).exists()


def test_run_untracked_runs_the_pipeline_and_says_so(tmp_path):
    uri = f"http://127.0.0.1:{free_port()}"
    project = make_team_project(tmp_path, uri, mlflow_yml={"server": {"on_unreachable": "run_untracked"}})

    result = _run_guarded(project, HANG_GUARD * 2)

    assert result.returncode == 0, output(result)
    text = output(result)
    assert f"MLflow tracking server {uri} is unreachable" in text and "running the pipeline UNTRACKED" in text
    assert "the pipeline ran UNTRACKED" in text
    assert text.index("Running node: fit") > text.index("running the pipeline UNTRACKED")
    assert text.index("the pipeline ran UNTRACKED") > text.index("Completed node: evaluate")
    for relative in LOCAL_OUTPUTS:
        assert (project.path / relative).is_file()
    assert not (project.path / "mlflow.db").exists() and not (project.path / "mlruns").exists()


def test_server_killed_during_the_run_keeps_outputs_and_lists_what_was_not_logged(tmp_path, migrated_db):
    import shutil

    server_root = tmp_path / "server"
    server_root.mkdir()
    shutil.copy(migrated_db, server_root / "server.db")
    server = start_server(server_root)
    try:
        project = make_team_project(tmp_path, server.uri)
        user_file = project.write("data/08_reporting/notes.txt", "written by the user before the run\n")
        pause = tmp_path / "pause"
        pause.mkdir()
        env = project_env({"TEST_PAUSE_DIR": str(pause), "TEST_PAUSE_STEP": "evaluate"})
        process = subprocess.Popen([KEDRO, "run"], cwd=project.path, env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 240
            while not (pause / "evaluate.started").exists():
                assert process.poll() is None, process.stdout.read()
                assert time.monotonic() < deadline, "the run never reached the evaluate node"
                time.sleep(0.2)
            server.kill()  # fit's model is logged; evaluate's artifact and metric, and the pipeline model, cannot be
            (pause / "evaluate.go").write_text("")
            text, _ = process.communicate(timeout=240)
        finally:
            if process.poll() is None:
                process.kill()
    finally:
        server.stop()

    assert process.returncode != 0, text
    for relative in LOCAL_OUTPUTS:
        assert (project.path / relative).is_file(), f"{relative} was not written"
    assert user_file.read_text() == "written by the user before the run\n"
    [error] = [i for i, line in enumerate(text.splitlines()) if line.startswith("Error: The pipeline ran, but")]
    report = "\n".join(text.splitlines()[error:])

    predictions = project.path / "data/07_model_output/predictions.csv"
    assert f"local copy: {predictions}" in report
    assert "MlflowMetricDataset 'r2'" in report or "'r2'" in report
    assert "the pipeline model of pipeline '__default__'" in report
    assert "the run's end status (FAILED while items are missing; the replay sets FINISHED)" in report and "Until then the run shows as RUNNING" in report
    assert "kedro mlflow run replay --run-id" in report  # tests/tracking/test_outage_replay.py replays it
    assert "Traceback" not in text

    # The server's store (read directly: the server is gone) has what was logged before the kill.
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{(server_root / 'server.db').as_posix()}")
    [run] = client.search_runs([client.get_experiment_by_name("team_project").experiment_id])
    assert run.data.params == {"factor": "2.0"}
    assert run.info.status == "RUNNING"  # the server died before the run could be closed
    assert run.info.run_id in report
    models = client.search_logged_models([run.info.experiment_id], filter_string=f"source_run_id = '{run.info.run_id}'")
    assert [m.name for m in models] == ["regressor_model"]

    # Once the store is reachable again, stale-runs still finds the run and marks it (without a replay).
    project.write_yaml("conf/recovered/mlflow.yml",
                       {"server": {"mlflow_tracking_uri": f"sqlite:///{(server_root / 'server.db').as_posix()}"}})
    listed = project.run_in_process("mlflow", "stale-runs", "--env", "recovered", "--mark-killed")
    assert listed.returncode == 0, output(listed)
    assert run.info.run_id in output(listed) and "Marked 1 run(s) KILLED" in output(listed)
    assert client.get_run(run.info.run_id).info.status == "KILLED"


@pytest.fixture(autouse=True)
def _no_leftover_pause(tmp_path: Path) -> None:
    yield
    for marker in tmp_path.glob("pause/*.started"):
        (marker.parent / marker.name.replace(".started", ".go")).write_text("")


def test_a_server_with_a_certificate_urllib_cannot_verify_is_left_to_mlflow(tmp_path):
    """Teams use private CAs (REQUESTS_CA_BUNDLE, MLFLOW_TRACKING_SERVER_CERT_PATH) that the
    health check's urllib does not read: a TLS server that answers is not 'unreachable'."""
    import ssl
    import threading

    from kedro_mlflow_starter.errors import TrackingStoreUnreachableError
    from kedro_mlflow_starter.tracking.store import check_reachable

    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    made = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                           "-out", str(cert), "-days", "1", "-subj", "/CN=mlflow.internal"],
                          capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"openssl cannot make a certificate here: {made.stderr}")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)

        def serve_once() -> None:
            connection, _ = listener.accept()
            try:
                with context.wrap_socket(connection, server_side=True):
                    pass
            except (ssl.SSLError, OSError):
                pass

        threading.Thread(target=serve_once, daemon=True).start()
        check_reachable(f"https://127.0.0.1:{listener.getsockname()[1]}", timeout=5)  # no error

    with pytest.raises(TrackingStoreUnreachableError, match="Connection refused"):
        check_reachable(f"https://127.0.0.1:{free_port()}", timeout=5)
