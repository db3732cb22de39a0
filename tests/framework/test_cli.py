"""`kedro mlflow init` and `kedro mlflow ui` (in process, but for the real server and Kedro's own CLI outside a project)."""

from __future__ import annotations

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
        deadline = time.monotonic() + 90
        body = None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                url = f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/get-by-name?experiment_name=demo_project"
                with urllib.request.urlopen(url, timeout=2) as response:
                    body = json.loads(response.read())
                break
            except OSError:
                time.sleep(0.5)
        assert body is not None, server.stdout.read() if server.poll() is not None else "UI did not answer"
        assert body["experiment"]["name"] == "demo_project"
        # one server process by default: no worker processes spawned (MLflow's default is 4)
        assert _spawned_workers(server.pid) == [], _spawned_workers(server.pid)
        assert _group_commands(server.pid), "the UI's server runs in the command's process group"
        # SIGTERM to `kedro mlflow ui` alone (a service manager's or an IDE's stop) stops its server too
        server.send_signal(signal.SIGTERM)
        console, _ = server.communicate(timeout=30)
        assert server.returncode == 0 and console.rstrip().endswith("MLflow UI stopped."), console
        assert _group_commands(server.pid) == [], "the MLflow server outlived the command"
        socket.create_server(("127.0.0.1", port)).close()  # the port is free again
    finally:
        if _group_commands(server.pid):
            os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


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
        if _group_commands(ui.pid):
            os.killpg(ui.pid, signal.SIGKILL)
        ui.wait(timeout=30)
        os.close(master)
    lines = [_as_shown(line) for line in shown.replace("\r\n", "\n").split("\n") if line.strip()]
    assert "^C" in shown and lines[-1] == "MLflow UI stopped.", shown[-2000:]
    assert ui.returncode == 0 and _group_commands(ui.pid) == []


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


def _spawned_workers(group: int) -> list[str]:
    """Command lines of the multiprocessing workers in process group ``group``."""
    return [command for command in _group_commands(group)
            if "multiprocessing.spawn" in command or "multiprocessing-fork" in command]


def _group_commands(group: int) -> list[str]:
    """Command lines of the live processes in process group ``group`` (Linux /proc; zombies are gone)."""
    commands = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) != group:
                continue
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ProcessLookupError):
            continue
        if command:  # a zombie's cmdline is empty
            commands.append(command)
    return commands
