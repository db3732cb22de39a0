"""``kedro mlflow ...`` driven in this process with click's ``CliRunner``, given the ``ProjectMetadata`` Kedro's
CLI gives its project commands (as kedro-airflow's tests do)."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import pytest
from click.testing import CliRunner, Result
from kedro.framework.startup import bootstrap_project
from kedro.utils import find_kedro_project

from kedro_mlflow_starter.framework.cli import commands

KedroMlflow = Callable[..., Result]


class HasPath(Protocol):  # a KedroProject of tests/project_factory.py, a GeneratedProject of the starter's tests
    path: Path


@pytest.fixture
def kedro_mlflow() -> KedroMlflow:
    """``kedro_mlflow(project, *args, cwd=...)``: ``kedro mlflow ARGS`` run from ``cwd`` (the project by default),
    the project found from there as Kedro finds it; another project's copy of its package is purged first."""

    def invoke(project: HasPath, *args: str, cwd: Path | None = None) -> Result:
        with contextlib.chdir(cwd or project.path):
            metadata = bootstrap_project(Path(find_kedro_project(Path.cwd())))
            package = metadata.package_name
            for name in [m for m in sys.modules if m == package or m.startswith(f"{package}.")]:
                del sys.modules[name]  # another project's copy of the same package (Kedro imports it on use)
            return CliRunner().invoke(commands, ["mlflow", *args], obj=metadata)

    os.environ["KEDRO_DISABLE_TELEMETRY"] = "true"
    return invoke


def explained(result: Result) -> str:
    """What a failed assertion on ``result`` shows: its output and, if any, its traceback."""
    import traceback

    trace = "".join(traceback.format_exception(*result.exc_info)) if result.exc_info else ""
    return f"{result.output}\n{trace}"
