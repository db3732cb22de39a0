"""``kedro mlflow`` outside a project: say where to run it instead of "No such command" (inside one this group is
named ``kedro``, without help text, so that Kedro merges it into its own empty section)."""

from __future__ import annotations

from pathlib import Path

import click
from kedro.utils import find_kedro_project

_OUTSIDE_PROJECT = find_kedro_project(Path.cwd()) is None


@click.group(name="kedro-mlflow-starter" if _OUTSIDE_PROJECT else "kedro",
             help="kedro-mlflow-starter global commands." if _OUTSIDE_PROJECT else "")
def commands() -> None:
    pass


if _OUTSIDE_PROJECT:

    @commands.command(
        name="mlflow",
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
        add_help_option=False,
    )
    def mlflow_outside_project() -> None:
        """MLflow commands (available inside a Kedro project)."""
        raise click.ClickException(
            f"`kedro mlflow` commands work inside a Kedro project, and no project was found in {Path.cwd()} "
            "or its parents (a project has a pyproject.toml with a [tool.kedro] section). cd into your "
            "project, or create one with `kedro new --starter=mlflow-iris`."
        )
