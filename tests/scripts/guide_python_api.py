"""The last step of Kedro's MLflow guide ("Tracking Kedro in MLflow using the Python API"), as
written there: a run opened with MLflow's fluent API, a Kedro session run inside it.

Input (JSON argument): ``experiment`` (for ``mlflow.set_experiment``). Run with the project root
as the current directory and no MLFLOW_TRACKING_URI: the run goes to MLflow's default store.

Output: ``{"run_id": the user's run, "session_id": the session's id, "tracking_uri": where
MLflow's fluent API pointed when the run was opened, "active_after": the run active after
the ``with`` (None)}``.
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

    bootstrap_project(Path.cwd())
    mlflow.set_experiment(args["experiment"])
    tracking_uri = mlflow.get_tracking_uri()
    with KedroSession.create() as session:
        with mlflow.start_run() as run:
            mlflow.set_tag("session_id", session.session_id)
            session.run()
    active = mlflow.active_run()
    return {"run_id": run.info.run_id, "session_id": session.session_id, "tracking_uri": tracking_uri,
            "active_after": active.info.run_id if active is not None else None}


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
