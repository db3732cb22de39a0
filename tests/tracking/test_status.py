"""Run status truth: signals sent to a real `kedro run`, exceptions, and `kill -9` recovery.

Each test starts `kedro run` as a subprocess whose node writes a 'started' marker and then
waits (for a 'go' file that never comes, bounded by a hang guard), so the test signals it
while a node is running, as a user's Ctrl-C or a scheduler's SIGTERM would. The runs and
commands that nothing signals (a failing node, a finished run, `kedro mlflow stale-runs`) run
in the test process.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.project_factory import KEDRO, KedroProject, make_project, project_env
from tests.tracking_helpers import client_for, logged_models_of_run, output, runs_of

NODES = '''
import os
import time
from pathlib import Path

import pandas as pd


def double(df: pd.DataFrame, factor: float) -> pd.DataFrame:
    if os.environ.get("TEST_PENDING_MODEL"):  # a model whose upload the failure or the kill cuts short
        import mlflow

        mlflow.initialize_logged_model(name="half_saved")
    folder = os.environ.get("TEST_PAUSE_DIR")
    if folder:
        Path(folder, "started").write_text(str(os.getpid()))
        deadline = time.monotonic() + 300  # hang guard: the test signals long before
        while not Path(folder, "go").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
    if os.environ.get("TEST_FAIL_NODE"):
        raise RuntimeError("node failed on purpose")
    return df * factor


def total(df: pd.DataFrame, model_options: dict) -> float:
    return float(df.to_numpy().sum()) + model_options["bias"]
'''


@pytest.fixture
def status_project(tmp_path: Path, migrated_db: Path) -> KedroProject:
    project = make_project(tmp_path, nodes=NODES)
    shutil.copy(migrated_db, project.db)
    return project


def _restore_default_sigint() -> None:
    # A test runner started from a non-interactive shell may ignore SIGINT; a user's terminal does not.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_paused_run(project: KedroProject, *args: str, env: dict[str, str] | None = None,
                     own_group: bool = False) -> tuple[subprocess.Popen[str], Path]:
    pause = project.path.parent / "pause"
    pause.mkdir(exist_ok=True)
    process = subprocess.Popen(
        [KEDRO, "run", *args], cwd=project.path, env=project_env({"TEST_PAUSE_DIR": str(pause), **(env or {})}),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL,
        preexec_fn=_restore_default_sigint, start_new_session=own_group,
    )
    deadline = time.monotonic() + 240
    # write_text creates the file before it writes the pid: wait for the content, not the name
    while not ((pause / "started").exists() and (pause / "started").read_text().strip()):
        if process.poll() is not None:
            raise AssertionError(f"kedro run ended before the node started:\n{process.stdout.read()}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("the node never started")
        time.sleep(0.1)
    return process, pause


def finish(process: subprocess.Popen[str]) -> str:
    try:
        text, _ = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    return text


def assert_nothing_left_running(project: KedroProject) -> None:
    running = [r.info.run_id for r in runs_of(project) if r.info.status == "RUNNING"]
    assert running == [], f"runs left RUNNING after kedro run returned: {running}"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_run_is_marked_killed_before_the_process_exits(status_project, signum):
    process, _ = start_paused_run(status_project)
    os.kill(process.pid, signum)
    text = finish(process)

    assert process.returncode != 0, text
    [run] = runs_of(status_project)
    assert run.info.status == "KILLED", text
    assert run.info.end_time is not None
    assert not (status_project.path / "data/02_intermediate/doubled.csv").exists()
    assert_nothing_left_running(status_project)


@pytest.mark.parametrize("mp_context", ["spawn", "fork"])
def test_sigterm_to_a_parallel_run_stops_its_workers_and_marks_it_killed(status_project, mp_context):
    process, pause = start_paused_run(status_project, "--runner", "ParallelRunner",
                                      env={"KEDRO_MP_CONTEXT": mp_context})
    worker = int((pause / "started").read_text())
    assert worker != process.pid
    # A scheduler's SIGTERM reaches only the main process; its workers must not keep the run alive.
    os.kill(process.pid, signal.SIGTERM)
    text = finish(process)

    assert process.returncode != 0, text
    [run] = runs_of(status_project)
    assert run.info.status == "KILLED", text
    assert_nothing_left_running(status_project)
    assert not _alive(worker), "the worker running the node outlived the run"


def test_ctrl_c_in_a_terminal_during_a_parallel_run_marks_it_killed(status_project):
    process, pause = start_paused_run(status_project, "--runner", "ParallelRunner",
                                      env={"KEDRO_MP_CONTEXT": "spawn"}, own_group=True)
    worker = int((pause / "started").read_text())
    # Ctrl-C reaches the whole foreground process group: the run and its workers.
    os.killpg(process.pid, signal.SIGINT)
    text = finish(process)

    assert process.returncode != 0, text
    [run] = runs_of(status_project)
    assert run.info.status == "KILLED", text
    assert_nothing_left_running(status_project)
    assert not _alive(worker)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie waiting for its parent counts as gone
        return stat.read().split()[2] != "Z"


def test_a_failing_node_marks_the_run_failed(status_project):
    result = status_project.run_in_process("run", env={"TEST_FAIL_NODE": "1", "TEST_PENDING_MODEL": "1"})
    assert result.returncode != 0
    assert "node failed on purpose" in output(result)
    [run] = runs_of(status_project)
    assert run.info.status == "FAILED"
    assert _model_statuses(status_project, run) == {"half_saved": "FAILED"}, "a model was left PENDING"
    assert "model 'half_saved'" in output(result) and "marked FAILED" in output(result)
    assert_nothing_left_running(status_project)


def _model_statuses(project: KedroProject, run) -> dict[str, str]:
    return {model.name: str(model.status) for model in logged_models_of_run(client_for(project), run.info.run_id)}


def test_kill_9_leaves_a_running_run_that_stale_runs_finds_and_marks_killed(status_project):
    finished = status_project.run_in_process("run")  # no pause: a finished run is never stale
    assert finished.returncode == 0, output(finished)
    process, _ = start_paused_run(status_project, env={"TEST_PENDING_MODEL": "1"})
    process.kill()  # SIGKILL: no handler, no atexit
    process.wait(timeout=60)
    [killed] = [r for r in runs_of(status_project) if r.info.status == "RUNNING"]
    assert _model_statuses(status_project, killed) == {"half_saved": "PENDING"}

    listed = status_project.run_in_process("mlflow", "stale-runs")
    assert listed.returncode == 0, output(listed)
    assert killed.info.run_id in output(listed) and f"process {process.pid}" in output(listed)
    assert "--mark-killed" in output(listed)
    assert {r.info.status for r in runs_of(status_project)} == {"FINISHED", "RUNNING"}

    marked = status_project.run_in_process("mlflow", "stale-runs", "--mark-killed")
    assert marked.returncode == 0, output(marked)
    assert "Marked 1 run(s) KILLED" in output(marked)
    statuses = {r.info.run_id: r.info.status for r in runs_of(status_project)}
    assert statuses[killed.info.run_id] == "KILLED"
    assert sorted(statuses.values()) == ["FINISHED", "KILLED"]
    assert _model_statuses(status_project, killed) == {"half_saved": "FAILED"}, "the killed upload stayed PENDING"

    again = status_project.run_in_process("mlflow", "stale-runs")
    assert "No stale runs" in output(again)


def test_stale_runs_leaves_a_live_run_alone(status_project):
    process, pause = start_paused_run(status_project)
    try:
        listed = status_project.run_in_process("mlflow", "stale-runs", "--mark-killed")
        assert listed.returncode == 0, output(listed)
        assert "No stale runs" in output(listed)
    finally:
        (pause / "go").write_text("")
        text = finish(process)
    assert process.returncode == 0, text
    [run] = runs_of(status_project)
    assert run.info.status == "FINISHED"
