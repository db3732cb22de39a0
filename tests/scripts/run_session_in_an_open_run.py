"""An orchestrator's process: open an MLflow run, then run a Kedro project's default pipeline in
a session inside it, and report whether the run the orchestrator opened is still its, and open.

Input (JSON argument): ``project_path``, ``tracking_uri``, ``experiment`` (set with
``mlflow.set_experiment``) and ``run_name`` (of the orchestrator's run).

Output: ``{"outer_run_id": the orchestrator's run, "active_run_id": the active run once the
session ended (inside the orchestrator's ``with``), "outer_status": the orchestrator's run's
status then}``.
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
    mlflow.set_tracking_uri(args["tracking_uri"])
    mlflow.set_experiment(args["experiment"])
    with mlflow.start_run(run_name=args["run_name"]) as outer:
        with KedroSession.create(project_path=root) as session:
            session.run()
        active = mlflow.active_run()
        active_run_id = active.info.run_id if active is not None else None
        outer_status = mlflow.get_run(outer.info.run_id).info.status
    return {"outer_run_id": outer.info.run_id, "active_run_id": active_run_id, "outer_status": outer_status}


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
