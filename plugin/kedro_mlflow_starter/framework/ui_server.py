"""``kedro mlflow ui``'s server: refuse a taken port, start ``mlflow ui``, wait until it answers.

The browser is opened only on a server that this command started and that answers
``/health``: never on whatever else listens on the port.

Quiet by default: the server's own chatter (a line per HTTP request, uvicorn's start and
shutdown lines, "Registry store URI not provided", the security-middleware banner, a
third-party deprecation warning, the ``CancelledError`` traceback of a Ctrl-C) is left out;
its warnings and errors still show. ``--verbose`` shows everything, requests included.
"""

from __future__ import annotations

import errno
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import re
import sys
import threading
from typing import IO

import click

STARTUP_TIMEOUT = 120.0  # seconds: a first start migrates a new SQLite store, on a busy machine
POLL_INTERVAL = 0.25


class PortTakenError(click.ClickException):
    """The UI's port already has a listener."""

    def __init__(self, host: str, port: int):
        super().__init__(
            f"Port {port} on {host} is already in use (another MLflow UI or another program). "
            f"Stop it, or choose a free port: `kedro mlflow ui --port {port + 1}` "
            "(or set ui.port in conf/local/mlflow.yml)."
        )


def check_port_free(host: str, port: int) -> None:
    """Raise ``PortTakenError`` when something listens on ``host:port``.

    ``SO_REUSEADDR`` as servers set it: a port left in TIME_WAIT by a stopped UI counts as free.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno in (errno.EADDRINUSE, errno.EACCES):
                raise PortTakenError(host, port) from None
            raise


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - our own http URL
            return response.status == 200  # noqa: PLR2004
    except (urllib.error.URLError, OSError, ValueError):
        return False


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


def quiet_ui_options(command: list[str], env: dict[str, str], verbose: bool) -> tuple[list[str], dict[str, str]]:
    """``command`` (``mlflow ui ...``) and its environment, made quiet unless ``verbose``."""
    if verbose:
        return command, env
    env = dict(env)
    env["PYTHONWARNINGS"] = ",".join(w for w in (env.get("PYTHONWARNINGS"), QUIET_WARNINGS) if w)
    return [*command, "--uvicorn-opts", QUIET_UVICORN_OPTS], env


class ServerOutput(threading.Thread):
    """Copies the server's output to ours, line by line, leaving out the noise unless ``verbose``.

    A traceback is held until its last line: one ending in ``CancelledError`` or
    ``KeyboardInterrupt`` is Ctrl-C reaching the server and is dropped. Once ``silence()``
    is called (we are stopping the server), nothing more is copied.
    """

    def __init__(self, stream: IO[str], verbose: bool, out: IO[str] | None = None):
        super().__init__(daemon=True)
        self.stream = stream
        self.verbose = verbose
        self.out = out or sys.stderr
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


def start_ui(command: Sequence[str], cwd: Path, env: dict[str, str], base: str, host: str, port: int,
             timeout: float = STARTUP_TIMEOUT, verbose: bool = False) -> subprocess.Popen[str]:
    """Start ``command`` (``mlflow ui ...``) and return it once ``base``/health answers.

    The server's output goes through a ``ServerOutput`` (``process.output``): quiet unless
    ``verbose``. Raises ``click.ClickException`` (the server stopped, or did not answer in
    ``timeout`` seconds); the process is stopped in both cases.
    """
    command, env = quiet_ui_options(list(command), env, verbose)
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE,  # noqa: S603 - our own argv
                               stderr=subprocess.STDOUT, text=True, bufsize=1)
    process.output = ServerOutput(process.stdout, verbose)  # type: ignore[attr-defined]
    process.output.start()  # type: ignore[attr-defined]
    deadline = time.monotonic() + timeout
    while True:
        code = process.poll()
        if code is not None:
            process.output.join(timeout=5)  # type: ignore[attr-defined] - its last lines first
            raise click.ClickException(
                f"The MLflow UI stopped before answering (exit code {code}); its messages are above. "
                f"If port {port} on {host} was taken meanwhile, use `kedro mlflow ui --port {port + 1}`."
            )
        if _answers(f"{base}/health"):
            if process.poll() is None:  # still ours: not someone else's server on that port
                return process
        if time.monotonic() > deadline:
            stop(process)
            raise click.ClickException(
                f"The MLflow UI did not answer at {base}/health within {timeout:.0f} s; stopped it. "
                "Its messages are above."
            )
        time.sleep(POLL_INTERVAL)


def stop(process: subprocess.Popen[str]) -> None:
    """Stop the server (its last words are not copied: the caller says it stopped)."""
    output = getattr(process, "output", None)
    if output is not None:
        output.silence()
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if output is not None:
        output.join(timeout=5)
