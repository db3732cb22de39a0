"""`kedro mlflow init` and `kedro mlflow ui` (in process, but for the real server and Kedro's own CLI outside a project)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

from tests.framework.conftest import explained
from tests.project_factory import KEDRO, free_port, project_env, run_kedro
from tests.tracking_helpers import output


def test_init_renders_the_starter_file_and_refuses_to_overwrite(project, kedro_mlflow):
    first = kedro_mlflow(project, "init", "--env", "local")
    assert first.exit_code == 0, explained(first)
    written = project.conf / "local" / "mlflow.yml"
    text = written.read_text()
    assert "{{" not in text and "name: demo_project" in text
    for key in ("mlflow_tracking_uri", "disable_autologging", "restore_if_deleted", "long_params_strategy",
                "create_experiment_kwargs", "nested", "ui:"):
        assert key in text
    written.write_text(text + "\n# my edit\n")
    again = kedro_mlflow(project, "init", "--env", "local")
    assert again.exit_code != 0
    assert "already exists" in again.output and "--force" in again.output
    assert written.read_text().endswith("# my edit\n")
    forced = kedro_mlflow(project, "init", "--env", "local", "--force")
    assert forced.exit_code == 0 and "# my edit" not in written.read_text()


def test_mlflow_commands_outside_a_project_say_so(tmp_path):
    result = run_kedro("mlflow", "init", cwd=tmp_path)
    assert result.returncode != 0
    assert "work inside a Kedro project" in output(result)
    assert str(tmp_path) in output(result) and "kedro new --starter=mlflow-iris" in output(result)


def test_ui_serves_the_project_store(project):
    assert project.run_in_process("run").returncode == 0
    port = free_port()
    server = subprocess.Popen([KEDRO, "mlflow", "ui", "--port", str(port), "--no-browser"], cwd=project.path / "src",
                              env=project_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              start_new_session=True)
    try:
        body = _wait_until_it_answers(server, port)
        assert body["experiment"]["name"] == "demo_project"
        # one server process by default: no worker processes spawned (MLflow's default is 4)
        assert _serving(port), "the UI's server processes are found by their port"
        assert _spawned_workers(port) == [], _spawned_workers(port)
        # SIGTERM to `kedro mlflow ui` alone (a service manager's or an IDE's stop) stops its server too
        server.send_signal(signal.SIGTERM)
        console, _ = server.communicate(timeout=30)
        assert server.returncode == 0 and console.rstrip().endswith("MLflow UI stopped."), console
        assert _serving(port) == [], "the MLflow server outlived the command"
        socket.create_server(("127.0.0.1", port)).close()  # the port is free again
    finally:
        _stop_all(server, port)


def test_ui_whose_server_dies_says_so_and_leaves_nothing_running(project):
    """`mlflow ui` killed under the command (uvicorn, its child, would live on holding the port)."""
    port = free_port()
    server = subprocess.Popen([KEDRO, "mlflow", "ui", "--port", str(port), "--no-browser"], cwd=project.path,
                              env=project_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              start_new_session=True)
    try:
        _wait_until_it_answers(server, port)
        (mlflow_ui,) = [pid for pid, command in _serving(port) if " -m mlflow ui " in command]
        os.kill(mlflow_ui, signal.SIGKILL)
        console, _ = server.communicate(timeout=60)
        assert server.returncode == 128 + signal.SIGKILL, console
        assert console.rstrip().endswith("MLflow UI stopped (exit code -9); its messages are above."), console
        deadline = time.monotonic() + 30  # uvicorn, told to stop, finishes its shutdown
        while _serving(port) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _serving(port) == [], "uvicorn outlived its `mlflow ui`"
    finally:
        _stop_all(server, port)


def test_ctrl_c_typed_in_a_terminal_ends_the_ui_with_a_clean_last_line(project):
    """In a terminal (a pty, the command its session's foreground), Ctrl-C is typed: the terminal echoes
    ``^C`` and signals the whole group, server included. What the terminal shows last is our line."""
    import fcntl
    import pty
    import termios

    port = free_port()
    master, slave = pty.openpty()

    def in_a_terminal() -> None:
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)  # stdin, the pty, becomes the session's terminal

    ui = subprocess.Popen([KEDRO, "mlflow", "ui", "--port", str(port), "--no-browser"], cwd=project.path,
                          env=project_env({"NO_COLOR": "1", "COLUMNS": "80"}), stdin=slave, stdout=slave, stderr=slave,
                          preexec_fn=in_a_terminal)
    os.close(slave)
    try:
        shown = _read_terminal(master, until="MLflow UI ready", timeout=120)
        os.write(master, b"\x03")  # Ctrl-C
        shown += _read_terminal(master, until=None, timeout=60)
        ui.wait(timeout=30)
    finally:
        _stop_all(ui, port)
        os.close(master)
    lines = [_as_shown(line) for line in shown.replace("\r\n", "\n").split("\n") if line.strip()]
    assert "^C" in shown and lines[-1] == "MLflow UI stopped.", shown[-2000:]
    assert ui.returncode == 0 and _serving(port) == []

    # the terminal closed (its window, an ssh session): SIGHUP to the command stops the server too
    master, slave = pty.openpty()
    ui = subprocess.Popen([KEDRO, "mlflow", "ui", "--port", str(port), "--no-browser"], cwd=project.path,
                          env=project_env({"NO_COLOR": "1", "COLUMNS": "80"}), stdin=slave, stdout=slave, stderr=slave,
                          preexec_fn=in_a_terminal)
    os.close(slave)
    try:
        _read_terminal(master, until="MLflow UI ready", timeout=120)
        os.close(master)  # the kernel hangs the session up: SIGHUP to its leader, the command
        ui.wait(timeout=60)
        assert _serving(port) == [], "the MLflow server outlived its closed terminal"
    finally:
        _stop_all(ui, port)


def _read_terminal(master: int, until: str | None, timeout: float) -> str:
    """What the terminal receives until ``until`` appears (None: until the command's end)."""
    import select

    text, deadline = "", time.monotonic() + timeout
    while time.monotonic() < deadline and (until is None or until not in text):
        if select.select([master], [], [], 0.2)[0]:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every process holding the terminal has exited
                return text
            text += chunk.decode(errors="replace")
    assert until is None or until in text, f"no {until!r} within {timeout} s:\n{text[-2000:]}"
    return text


def _as_shown(line: str) -> str:
    """A line as a terminal shows it: after a carriage return, the text that follows overwrites it."""
    shown = ""
    for part in line.split("\r"):
        shown = part + shown[len(part):]
    return shown.rstrip()


def test_ui_refuses_a_worker_count_below_one(project, kedro_mlflow):
    result = kedro_mlflow(project, "ui", "--workers", "0", "--no-browser")
    assert result.exit_code == 2, explained(result)
    assert "Invalid value for '--workers'" in result.output and "0 is not in the range x>=1" in result.output


def _wait_until_it_answers(server: subprocess.Popen[str], port: int) -> dict:
    """The project's experiment as the UI's server answers for it, once it answers."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and server.poll() is None:
        try:
            url = f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/get-by-name?experiment_name=demo_project"
            with urllib.request.urlopen(url, timeout=2) as response:
                return json.loads(response.read())
        except OSError:
            time.sleep(0.5)
    raise AssertionError(server.stdout.read() if server.poll() is not None else "UI did not answer")


def _spawned_workers(port: int) -> list[str]:
    """Command lines of the multiprocessing workers of the server on ``port``."""
    serving = {pid for pid, _ in _serving(port)}
    return [command for pid, command in _processes() if _parent(pid) in serving
            and ("multiprocessing.spawn" in command or "multiprocessing-fork" in command)]


def _serving(port: int) -> list[tuple[int, str]]:
    """The live server processes started with ``--port <port>``: `mlflow ui` and its uvicorn."""
    return [(pid, command) for pid, command in _processes() if f"--port {port} " in f"{command} "
            and ("-m mlflow ui" in command or "uvicorn" in command)]


def _processes() -> list[tuple[int, str]]:
    """(pid, command line) of the live processes (Linux /proc; a zombie's command line is empty)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if command:
            found.append((int(entry.name), command))
    return found


def _parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _stop_all(command: subprocess.Popen[str], port: int) -> None:
    """Whatever is left of the command and its server, killed (a failed test's clean-up)."""
    for pid, _ in _serving(port):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if command.poll() is None:
        command.kill()
    command.wait(timeout=30)
