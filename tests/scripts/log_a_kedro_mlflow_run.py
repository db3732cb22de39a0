"""Log a run as a kedro-mlflow 2.x project left it in a file store: a param and a metric, then a model
(kedro-mlflow logs the pipeline model at the end of the run).

Input (JSON argument): ``tracking_uri`` (e.g. ``mlruns``, with MLFLOW_ALLOW_FILE_STORE=true), ``experiment``.

Output: ``{"run_id": ...}``.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def main(args: dict[str, Any]) -> dict[str, Any]:
    import mlflow
    import numpy as np
    from sklearn.linear_model import LinearRegression

    mlflow.set_tracking_uri(args["tracking_uri"])
    mlflow.set_experiment(args["experiment"])
    with mlflow.start_run(run_name="past") as run:
        mlflow.log_param("C", "1")
        mlflow.log_metric("accuracy", 0.9)
        mlflow.sklearn.log_model(LinearRegression().fit(np.ones((3, 1)), [1.0, 2.0, 3.0]), name="old_model")
    return {"run_id": run.info.run_id}


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
