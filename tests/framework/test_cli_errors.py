"""How our errors reach the command line: the ``kedro.cli_hooks`` entry point installs the one-paragraph format."""

from __future__ import annotations

import sys
import tomllib
from importlib import import_module
from pathlib import Path

from kedro_mlflow_starter.errors import KedroMlflowUserError

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_a_kedro_cli_hook_installs_the_error_format_once_and_leaves_other_errors_alone(monkeypatch, capsys) -> None:
    seen = []
    monkeypatch.setattr(sys, "excepthook", lambda *exc_info: seen.append(exc_info[1]))
    entry = tomllib.loads(PYPROJECT.read_text())["project"]["entry-points"]["kedro.cli_hooks"]["kedro-mlflow-starter"]
    module, _, name = entry.partition(":")
    hooks = getattr(import_module(module), name)
    hooks.before_command_run(project_metadata=None, command_args=["run"])
    installed = sys.excepthook
    hooks.before_command_run(project_metadata=None, command_args=["run"])
    assert sys.excepthook is installed, "installed once"
    try:
        raise KedroMlflowUserError("mlflow.yml: server.port must be a number")
    except KedroMlflowUserError as error:
        sys.excepthook(type(error), error, error.__traceback__)
    other = ValueError("not ours")
    sys.excepthook(ValueError, other, None)
    assert capsys.readouterr().err == "Error: mlflow.yml: server.port must be a number\n"
    assert seen == [other]

