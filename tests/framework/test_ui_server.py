"""What `kedro mlflow ui` copies of its server's output (issue 21)."""

from __future__ import annotations

import pytest


_CTRL_C = (
    "2026/12/06 11:25:52 ERROR:    Traceback (most recent call last):\n"
    '  File "uvicorn/server.py", line 89, in serve\n'
    "KeyboardInterrupt\n"
    "\n"
    "During handling of the above exception, another exception occurred:\n"
    "\n"
    "Traceback (most recent call last):\n"
    '  File "starlette/routing.py", line 701, in lifespan\n'
    "asyncio.exceptions.CancelledError\n"
)
_SERVER_ERROR = (
    "Traceback (most recent call last):\n"
    '  File "mlflow/store/db/utils.py", line 12, in create\n'
    "sqlite3.OperationalError: unable to open database file\n"
)
_NOISE = (
    "Registry store URI not provided. Using backend store URI.\n"
    "[MLflow] Security middleware enabled with default settings (localhost-only). To allow ...\n"
    "2026/12/06 11:24:28 INFO:     Started server process [13543]\n"
    '2026/12/06 11:24:29 INFO:     127.0.0.1:47200 - "GET / HTTP/1.1" 200 OK\n'
)


@pytest.mark.parametrize(
    ("server_says", "verbose", "shown"),
    [
        (_NOISE, False, ""),
        (_NOISE, True, _NOISE),
        (_CTRL_C, False, ""),  # Ctrl-C reaching the server: not an error
        (_SERVER_ERROR, False, _SERVER_ERROR),  # a real error keeps its whole traceback
        (_NOISE + _SERVER_ERROR + "WARNING: something to see\n", False, _SERVER_ERROR + "WARNING: something to see\n"),
    ],
    ids=["noise", "noise-verbose", "ctrl-c", "server-error", "mixed"],
)
def test_kedro_mlflow_ui_copies_what_its_server_says_that_a_user_needs(server_says, verbose, shown) -> None:
    import io

    from kedro_mlflow_starter.framework.ui_server import ServerOutput

    out = io.StringIO()
    copier = ServerOutput(io.StringIO(server_says), verbose, out=out)
    copier.run()
    assert out.getvalue() == shown
