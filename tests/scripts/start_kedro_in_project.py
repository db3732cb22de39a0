"""What ``kedro --help`` and a session do first in a project, in one fresh interpreter: load the
CLI plugins, print the help, list every project command, bootstrap the project, create a session,
its context and catalog, then import the plugin's packages; report which modules that loaded.

Input (JSON argument): ``project_path``.

Output: ``{"help": the help text, "experiment_name": the context's MLflow experiment,
"modules": [sys.modules, sorted]}``.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import sys
from pathlib import Path
from typing import Any


def main(args: dict[str, Any]) -> dict[str, Any]:
    from kedro.framework.cli.cli import KedroCLI, _init_plugins
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    project_path = Path(args["project_path"])
    _init_plugins()
    cli = KedroCLI(project_path=project_path)
    help_text = io.StringIO()
    with contextlib.redirect_stdout(help_text):
        try:
            cli.main(["--help"], standalone_mode=False)
        except SystemExit:
            pass
    for group in cli.project_groups:
        group.list_commands(None)
    bootstrap_project(project_path)
    with KedroSession.create(project_path=project_path) as session:
        context = session.load_context()
        experiment_name = context.mlflow.experiment_name
        _catalog = context.catalog  # building it must not import mlflow either
    for name in ("kedro_mlflow_starter", "kedro_mlflow_starter.io", "kedro_mlflow_starter.pipeline",
                 "kedro_mlflow_starter.framework.hooks", "kedro_mlflow_starter.framework.cli"):
        importlib.import_module(name)
    return {"help": help_text.getvalue(), "experiment_name": experiment_name, "modules": sorted(sys.modules)}


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
