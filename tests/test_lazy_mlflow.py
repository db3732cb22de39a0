"""Loading the plugin's entry points, config and catalog never imports mlflow."""

from __future__ import annotations

import subprocess
import sys

from tests.project_factory import project_env


def _modules_after(script: str, cwd) -> str:
    done = subprocess.run([sys.executable, "-c", script], cwd=cwd, env=project_env(), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_kedro_help_and_context_creation_do_not_import_mlflow(project):
    script = f"""
import sys
from pathlib import Path
from kedro.framework.cli.cli import KedroCLI, _init_plugins
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
_init_plugins()
cli = KedroCLI(project_path=Path({str(project.path)!r}))
try:
    cli.main(["--help"], standalone_mode=False)
except SystemExit:
    pass
for group in cli.project_groups:
    group.list_commands(None)
bootstrap_project(Path({str(project.path)!r}))
with KedroSession.create(project_path=Path({str(project.path)!r})) as session:
    context = session.load_context()
    assert context.mlflow.experiment_name == "demo_project"
    catalog = context.catalog
import kedro_mlflow_starter, kedro_mlflow_starter.io, kedro_mlflow_starter.pipeline
from kedro_mlflow_starter.framework import hooks, cli as plugin_cli
print("MLFLOW_LOADED" if [m for m in sys.modules if m == "mlflow" or m.startswith("mlflow.")] else "CLEAN")
"""
    out = _modules_after(script, project.path)
    assert "mlflow" in out  # the help text lists our command group
    assert out.strip().endswith("CLEAN")
