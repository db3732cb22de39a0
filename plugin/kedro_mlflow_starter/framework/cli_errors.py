"""Our errors on the command line: one ``Error: <message>`` paragraph, no traceback (``--verbose`` or our logger at
DEBUG shows it), for ``kedro mlflow ...`` (click errors) and for ``kedro run`` (an ``excepthook``, from a CLI hook)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

import click
from kedro.framework.cli.hooks import cli_hook_impl
from kedro.framework.cli.utils import KedroCliError

from kedro_mlflow_starter.errors import KedroMlflowUserError

if TYPE_CHECKING:
    from kedro.framework.startup import ProjectMetadata

ExceptHook = Callable[[type[BaseException], BaseException, TracebackType | None], Any]


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
    """``kedro <command> --verbose``, or our logger at DEBUG (``KEDRO_LOGGING_CONFIG``)."""
    return bool(KedroCliError.VERBOSE_ERROR) or logging.getLogger("kedro_mlflow_starter").isEnabledFor(logging.DEBUG)


def install_cli_error_format() -> None:
    """Print an uncaught ``KedroMlflowUserError`` as ``Error: <message>`` (idempotent)."""
    previous: ExceptHook = sys.excepthook
    if getattr(previous, "kedro_mlflow_starter", False):
        return

    def excepthook(kind: type[BaseException], value: BaseException, traceback: TracebackType | None) -> None:
        error = user_error_in(value)
        if error is None or traceback_wanted():
            previous(kind, value, traceback)
        else:
            click.echo(f"Error: {error}", err=True)

    excepthook.kedro_mlflow_starter = True  # type: ignore[attr-defined]
    sys.excepthook = excepthook


class CliErrorFormat:
    """The ``kedro.cli_hooks`` entry point: every ``kedro`` command prints our errors as one paragraph."""

    @cli_hook_impl
    def before_command_run(self, project_metadata: ProjectMetadata | None, command_args: list[str]) -> None:
        install_cli_error_format()


cli_hooks = CliErrorFormat()
