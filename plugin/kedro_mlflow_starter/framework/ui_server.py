"""``kedro mlflow ui``'s server: refuse a taken port, start ``mlflow ui``, wait until it answers.

The browser is opened only on a server that this command started and that answers
``/health``: never on whatever else listens on the port.
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


def start_ui(command: Sequence[str], cwd: Path, env: dict[str, str], base: str, host: str, port: int,
             timeout: float = STARTUP_TIMEOUT) -> subprocess.Popen[bytes]:
    """Start ``command`` (``mlflow ui ...``) and return it once ``base``/health answers.

    Raises ``click.ClickException`` (the server stopped, or did not answer in ``timeout``
    seconds); the process is stopped in both cases.
    """
    process = subprocess.Popen(list(command), cwd=cwd, env=env)  # noqa: S603 - our own argv
    deadline = time.monotonic() + timeout
    while True:
        code = process.poll()
        if code is not None:
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


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
