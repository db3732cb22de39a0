"""Finding the Kedro project a ``kedro mlflow`` command runs in (from any subfolder)."""

from __future__ import annotations

from pathlib import Path

import click


def find_project_root() -> Path:
    """The project folder containing the current directory, or a ClickException saying so."""
    from kedro.utils import find_kedro_project

    root = find_kedro_project(Path.cwd())
    if root is None:
        raise click.ClickException(
            f"No Kedro project found in {Path.cwd()} or its parents (looked for a pyproject.toml with a "
            "[tool.kedro] section). Run this command inside a Kedro project."
        )
    return Path(root)
