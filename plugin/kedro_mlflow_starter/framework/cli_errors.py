"""How our errors look on the command line: one ``Error: <message>`` line, no traceback.

``KedroMlflowUserError`` messages already say what is wrong, where and the fix; a
traceback into the plugin would only hide that. The exceptions themselves know nothing of
the command line (``errors.py``); the formatting happens here, at the two edges where our
errors reach a terminal:

- our own ``kedro mlflow ...`` commands, whose group turns them into ``click`` errors;
- Kedro's ``kedro run``, where an error raised by the hook or a dataset ends the process
  uncaught: the hook installs an ``excepthook`` that prints our errors as one line
  and leaves every other exception to the handler that was there (Kedro's rich traceback).
  The traceback of our errors too is shown when ``traceback_wanted()``: a ``--verbose``
  Kedro command, or the ``kedro_mlflow_starter`` logger at DEBUG (``KEDRO_LOGGING_CONFIG``).
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any

import click

from kedro_mlflow_starter.errors import KedroMlflowUserError


def user_error_in(error: BaseException | None) -> KedroMlflowUserError | None:
    """Our user error, if ``error`` is one or was raised because of one (Kedro wraps some)."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, KedroMlflowUserError):
            return error
        seen.add(id(error))
        error = error.__cause__
    return None


class UserErrorsAsClickErrors(click.Group):
    """A click group whose commands report ``KedroMlflowUserError`` as click errors."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KedroMlflowUserError as error:
            raise click.ClickException(str(error)) from error


def traceback_wanted() -> bool:
    """The traceback too: ``kedro <command> --verbose`` (where Kedro offers it), or our logger at
    DEBUG in the project's logging configuration (``KEDRO_LOGGING_CONFIG``)."""
    import logging

    from kedro.framework.cli.utils import KedroCliError

    return bool(KedroCliError.VERBOSE_ERROR) or logging.getLogger("kedro_mlflow_starter").isEnabledFor(logging.DEBUG)


def _print_user_errors(previous: Any) -> Any:
    def excepthook(kind: type[BaseException], value: BaseException, traceback: TracebackType | None) -> None:
        error = user_error_in(value)
        if error is None or traceback_wanted():
            previous(kind, value, traceback)
            return
        click.echo(f"Error: {error}", err=True)

    excepthook.kedro_mlflow_starter = True  # type: ignore[attr-defined]
    return excepthook


def install_cli_error_format() -> None:
    """Print an uncaught ``KedroMlflowUserError`` as ``Error: <message>`` (once installed, idempotent)."""
    if getattr(sys.excepthook, "kedro_mlflow_starter", False):
        return
    sys.excepthook = _print_user_errors(sys.excepthook)
