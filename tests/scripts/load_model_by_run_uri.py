"""Log a small scikit-learn model in a new MLflow run, load it back through the plugin's
MlflowModelTrackingDataset by its ``runs:/`` URI and predict; report what the temp folder held
meanwhile (the store comes from MLFLOW_TRACKING_URI, the temp folder from TMPDIR).

Input (JSON argument): ``temp_folder``, the folder to list.

Output: ``{"predictions": [the predictions, rounded to 3 decimals], "temp_during": [the temp
folder's entries, sorted, while the process still runs]}``.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any


def main(args: dict[str, Any]) -> dict[str, Any]:
    import mlflow
    import numpy as np
    from kedro_mlflow_starter.io import MlflowModelTrackingDataset
    from sklearn.linear_model import LinearRegression

    x = np.array([[1.0], [2.0], [3.0]])
    with mlflow.start_run() as run:
        mlflow.sklearn.log_model(LinearRegression().fit(x, 2 * x[:, 0]), name="reg")
    dataset = MlflowModelTrackingDataset(flavor="mlflow.sklearn",
                                         load_args={"model_uri": f"runs:/{run.info.run_id}/reg"})
    predictions = dataset.load().predict(x).round(3).tolist()
    return {"predictions": predictions, "temp_during": sorted(os.listdir(args["temp_folder"]))}


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
