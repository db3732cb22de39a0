"""A script running a Kedro project's default pipeline in a session, then asking MLflow which
run is active: the Kedro run must not be left as the fluent active run once ``session.run()``
returns (nor once it raised).

Input (JSON argument): ``project_path``; ``runtime_params`` (optional).

Output: ``{"active_after": the fluent active run id once the session ended (None), "error":
the exception's class name if session.run() raised, else None}``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def main(args: dict[str, Any]) -> dict[str, Any]:
    import mlflow
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    root = Path(args["project_path"])
    bootstrap_project(root)
    error = None
    with KedroSession.create(project_path=root, runtime_params=args.get("runtime_params")) as session:
        try:
            session.run()
        except Exception as raised:  # noqa: BLE001 - reported, not hidden
            error = type(raised).__name__
    active = mlflow.active_run()
    return {"active_after": active.info.run_id if active is not None else None, "error": error}


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
