"""Build a Kedro catalog with one entry of each of the plugin's datasets, checked by the plugin,
and report which modules that loaded (building a catalog must not import mlflow).

Input (JSON argument): ``folder``, where the file-based entries point (nothing is written there).

Output: ``{"types": [the entries' class names, sorted], "modules": [sys.modules, sorted]}``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def main(args: dict[str, Any]) -> dict[str, Any]:
    from kedro.io import DataCatalog
    from kedro_mlflow_starter.framework.catalog_checks import build_mlflow_datasets

    folder = Path(args["folder"])
    p = "kedro_mlflow_starter.io."
    catalog = DataCatalog.from_config({
        "a": {"type": p + "MlflowArtifactDataset",
              "dataset": {"type": "pickle.PickleDataset", "filepath": str(folder / "a.pkl")}},
        "m": {"type": p + "MlflowModelTrackingDataset", "flavor": "mlflow.sklearn"},
        "l": {"type": p + "MlflowModelLocalFileSystemDataset", "flavor": "mlflow.sklearn",
              "filepath": str(folder / "m")},
        "r": {"type": p + "MlflowModelRegistryDataset", "model_name": "x", "alias": "champion"},
        "s": {"type": p + "MlflowMetricDataset"},
        "h": {"type": p + "MlflowMetricHistoryDataset"},
        "hs": {"type": p + "MlflowMetricsHistoryDataset"},
    })
    build_mlflow_datasets(catalog)
    return {"types": sorted(type(catalog[name]).__name__ for name in catalog), "modules": sorted(sys.modules)}


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
