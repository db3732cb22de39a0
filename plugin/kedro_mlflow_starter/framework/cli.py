"""``kedro mlflow ...``, registered as project commands; each command's module loads when it runs (Kedro's
``LazyGroup``), so ``kedro --help`` costs what it costs without the plugin."""

from __future__ import annotations

import click
from kedro.framework.cli.utils import LazyGroup

from kedro_mlflow_starter.framework.cli_errors import UserErrorsAsClickErrors

PACKAGE = "kedro_mlflow_starter.framework"


class MlflowCommands(UserErrorsAsClickErrors, LazyGroup):
    """``kedro mlflow``: its commands loaded on use, our errors reported as click errors."""


@click.group(name="kedro-mlflow-starter")
def commands() -> None:
    """kedro-mlflow-starter project commands."""


@commands.group(name="mlflow", cls=MlflowCommands, lazy_subcommands={
    "init": f"{PACKAGE}.cli_init.init", "modelify": f"{PACKAGE}.modelify.modelify", "run": f"{PACKAGE}.cli_run.run_group",
    "stale-runs": f"{PACKAGE}.cli_stale_runs.stale_runs", "sweep": f"{PACKAGE}.cli_sweep.sweep",
    "ui": f"{PACKAGE}.ui_server.ui"})
def mlflow_group() -> None:
    """MLflow tracking for this Kedro project (kedro-mlflow-starter)."""
