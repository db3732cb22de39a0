"""A notebook or a script: one Kedro session after another in the same interpreter, each
created with its own runtime params and running its own pipelines.

Input (JSON argument): ``project_path``; ``sessions``, a list of ``{"pipeline_names": [...],
"runtime_params": {...}}`` (both optional: Kedro's defaults).

Output: ``{"run_env_after": [for each session, the run id variables (MLFLOW_RUN_ID,
KEDRO_MLFLOW_RUN_ID) left in os.environ once it ended]}``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

RUN_ID_VARIABLES = ("KEDRO_MLFLOW_RUN_ID", "MLFLOW_RUN_ID")


def main(args: dict[str, Any]) -> dict[str, Any]:
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    root = Path(args["project_path"])
    bootstrap_project(root)
    run_env_after = []
    for session_args in args["sessions"]:
        create = {"runtime_params": session_args["runtime_params"]} if "runtime_params" in session_args else {}
        run = {"pipeline_names": session_args["pipeline_names"]} if "pipeline_names" in session_args else {}
        with KedroSession.create(project_path=root, **create) as session:
            session.run(**run)
        run_env_after.append([name for name in RUN_ID_VARIABLES if name in os.environ])
    return {"run_env_after": run_env_after}


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
