"""``kedro mlflow ui``: serve the project's store with ``mlflow ui`` (a taken port refused, the browser opened once our
server answers ``/health``), quiet unless ``--verbose``; for a tracking server, print its experiment's link."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import webbrowser
from typing import IO, TYPE_CHECKING

import click

from kedro_mlflow_starter.framework.project_session import project_config, project_metadata
from kedro_mlflow_starter.tracking.client import client_for
from kedro_mlflow_starter.tracking.experiment import ensure_experiment
from kedro_mlflow_starter.tracking.status_guard import signals_interrupt
from kedro_mlflow_starter.tracking.store import check_reachable, file_store_env
from kedro_mlflow_starter.tracking.ui_url import experiment_url, ui_base

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from kedro.framework.startup import ProjectMetadata

STARTUP_TIMEOUT = 120.0  # seconds: a first start migrates a new SQLite store, on a busy machine
POLL_INTERVAL = 0.25
# What a quiet UI leaves out: lines a user has no use for (whole lines, after stripping).
_NOISE = (
    re.compile(r"^Registry store URI not provided\. Using backend store URI\.$"),
    re.compile(r"^\[MLflow\] Security middleware enabled with default settings"),
    re.compile(r"(^|\s)INFO:\s"),  # uvicorn's INFO lines (requests, start, shutdown), whatever the log level
)
# uvicorn's own switches for the same, and the deprecation warning MLflow's server module triggers on import.
QUIET_UVICORN_OPTS = "--log-level warning --no-access-log"
QUIET_WARNINGS = "ignore::UserWarning:mlflow.server.fastapi_app"
_CHAINED = ("During handling of the above exception", "The above exception was the direct cause")
_STOPPED_BY_USER = re.compile(r"^(asyncio\.exceptions\.|concurrent\.futures\.)?CancelledError\b|^KeyboardInterrupt\b")


@click.command()
@click.option("--env", "-e", default=None, help="The Kedro environment whose mlflow.yml to read.")
@click.option("--host", default=None, help="Host to serve the UI on (default: ui.host, 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port to serve the UI on (default: ui.port, 5000).")
@click.option("--no-browser", is_flag=True, help="Do not open a web browser.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1),
              help="Server processes (MLflow's own default, 4, starts 2 s slower for one user).")
@click.option("--verbose", "-v", is_flag=True, help="Show the server's own messages, one line per HTTP request.")
@click.pass_obj
def ui(metadata: ProjectMetadata | None, env: str | None, host: str | None, port: int | None,  # noqa: PLR0913
       no_browser: bool, workers: int, verbose: bool) -> None:
    """Open the MLflow UI on this project's experiment (runs and models view).

    For the embedded store it serves the UI itself, and opens the browser once the UI
    answers. A taken port is refused with the port named.
    """
    config = project_config(project_metadata(metadata), env)
    uri = config.tracking_uri()
    client = client_for(uri, config.registry_uri())
    if uri.startswith(("http://", "https://")):
        try:  # without an answer, the link opens on the experiments list
            check_reachable(uri, config.server.connect_timeout)
            experiment = client.get_experiment_by_name(config.experiment_name)
        except Exception:  # noqa: BLE001
            experiment = None
        url = experiment_url(ui_base(uri, "", 0), experiment.experiment_id if experiment is not None else None)
        click.echo(f"This project tracks to a server; its experiment:\n{url}")
        if not no_browser:
            webbrowser.open(url)
        return
    host, port = host or config.ui.host, port or config.ui.port
    check_port_free(host, port)
    os.environ.update(file_store_env(uri))
    base = ui_base(uri, host, port)
    url = experiment_url(base, ensure_experiment(client, config))  # created, so that the link always works
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", host, "--port", str(port),
               "--artifacts-destination", str(config.project_path / "mlartifacts"), "--workers", str(workers)]
    # MLflow's job runner (GenAI jobs) is of no use to a Kedro project's UI; it starts extra processes and leaves
    # a db_init_lock-<hash> file in the temp folder. Opt back in with MLFLOW_SERVER_ENABLE_JOB_EXECUTION=true.
    os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    click.echo(f"Starting the MLflow UI for {uri} on port {port}...")
    process = None
    # SIGTERM, and SIGHUP (the terminal closed: the server, in a session of its own, does not get it), stop
    # the server as Ctrl-C does
    with signals_interrupt("kedro mlflow ui", (signal.SIGTERM, signal.SIGHUP)):
        try:
            process = start_ui(command, config.project_path, dict(os.environ), base, host, port, verbose=verbose)
            click.echo(f"MLflow UI ready (Ctrl-C to stop):\n{url}")
            if not no_browser:
                webbrowser.open(url)
            code = process.wait()
        except KeyboardInterrupt:
            code = 0
        finally:
            if process is not None:
                stop(process)  # silences the server first: our line is the last one
    stopped = "MLflow UI stopped." if code == 0 else f"MLflow UI stopped (exit code {code}); its messages are above."
    click.echo(("\r" if sys.stdout.isatty() else "") + stopped)  # over the "^C" a terminal echoes
    sys.exit(code if code >= 0 else 128 - code)  # killed by signal N: 128 + N, as a shell says it


def check_port_free(host: str, port: int) -> None:
    """A ClickException when something listens on ``host:port`` (one left in TIME_WAIT counts as free)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno in (errno.EADDRINUSE, errno.EACCES):
                raise click.ClickException(
                    f"Port {port} on {host} is already in use (another MLflow UI or another program). "
                    f"Stop it, or choose a free port: `kedro mlflow ui --port {port + 1}` "
                    "(or set ui.port in conf/local/mlflow.yml).") from None
            raise


class ServerOutput(threading.Thread):
    """Copies the server's output to ours, line by line, leaving out the noise unless ``verbose`` (and a
    traceback ending in ``CancelledError`` or ``KeyboardInterrupt``: Ctrl-C); nothing after ``silence()``."""

    def __init__(self, stream: IO[str], verbose: bool, out: IO[str] | None = None):
        super().__init__(daemon=True)
        self.stream, self.verbose, self.out = stream, verbose, out or sys.stderr
        self._silenced = threading.Event()
        self._traceback: list[str] = []

    def silence(self) -> None:
        self._silenced.set()

    def run(self) -> None:
        for line in self.stream:
            if not self._silenced.is_set():
                self._copy(line)
        if self._traceback and not self._silenced.is_set():
            self._emit(self._traceback)

    def _copy(self, line: str) -> None:
        text = line.strip()
        if self.verbose:
            self._emit([line])
        elif self._traceback or "Traceback (most recent call last)" in text or text.startswith(_CHAINED):
            self._traceback.append(line)
            ends = line[:1] not in (" ", "\t") and text and "Traceback (most recent" not in text
            if ends and not text.startswith(_CHAINED):
                held, self._traceback = self._traceback, []
                if not _STOPPED_BY_USER.search(text):
                    self._emit(held)
        elif text and not any(pattern.search(text) for pattern in _NOISE):
            self._emit([line])

    def _emit(self, lines: list[str]) -> None:
        self.out.write("".join(lines))
        self.out.flush()


def start_ui(command: Sequence[str], cwd: Path, env: dict[str, str], base: str, host: str, port: int,  # noqa: PLR0913
             timeout: float = STARTUP_TIMEOUT, verbose: bool = False) -> subprocess.Popen[str]:
    """Start ``command`` (``mlflow ui ...``), its output through a ``ServerOutput``, and return it once ``base``/health
    answers; else stop it and raise a ClickException."""
    if not verbose:
        env = {**env, "PYTHONWARNINGS": ",".join(w for w in (env.get("PYTHONWARNINGS"), QUIET_WARNINGS) if w)}
        command = [*command, "--uvicorn-opts", QUIET_UVICORN_OPTS]
    # a session of its own: `stop` ends the whole of it, and Ctrl-C reaches only us (we stop it, then say so)
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE,  # noqa: S603 - our own argv
                               stderr=subprocess.STDOUT, text=True, bufsize=1, start_new_session=True)
    process.output = ServerOutput(process.stdout, verbose)  # type: ignore[attr-defined]
    process.output.start()  # type: ignore[attr-defined]
    deadline = time.monotonic() + timeout
    try:
        while (code := process.poll()) is None:
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as response:  # noqa: S310 - our own URL
                    if response.status == 200 and process.poll() is None:  # noqa: PLR2004 - ours, not another server
                        return process
            except (urllib.error.URLError, OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise click.ClickException(f"The MLflow UI did not answer at {base}/health within {timeout:.0f} s; "
                                           "stopped it. Its messages are above.")
            time.sleep(POLL_INTERVAL)
    except BaseException:  # no answer in time, Ctrl-C or SIGTERM while it starts: no server left behind
        stop(process)
        raise
    process.output.join(timeout=5)  # type: ignore[attr-defined] - its last lines first
    raise click.ClickException(
        f"The MLflow UI stopped before answering (exit code {code}); its messages are above. "
        f"If port {port} on {host} was taken meanwhile, use `kedro mlflow ui --port {port + 1}`.")


def stop(process: subprocess.Popen[str]) -> None:
    """Stop the server and what it started, its process group: uvicorn outlives an ``mlflow ui`` that died.
    Its last words are not copied: the caller says it stopped."""
    output = getattr(process, "output", None)
    if output is not None:
        output.silence()
    with contextlib.suppress(ProcessLookupError):  # nothing of it is left
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    if output is not None:
        output.join(timeout=5)
