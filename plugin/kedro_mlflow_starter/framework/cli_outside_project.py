"""``kedro mlflow`` outside a Kedro project: say where to run it instead of "No such command".

Kedro loads project commands only inside a project, and global commands take precedence
over project ones, so this group only carries ``mlflow`` when no project is found.

Inside a project the group is empty, and Kedro's ``--help`` would still print its title
("Global commands from kedro-mlflow-starter") over nothing: there it takes Kedro's own group
name, ``kedro``, so that Kedro merges it into its own section, and no help text.
"""

from __future__ import annotations

from pathlib import Path

import click


def _outside_project() -> bool:
    from kedro.utils import find_kedro_project

    return find_kedro_project(Path.cwd()) is None


_OUTSIDE_PROJECT = _outside_project()


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
