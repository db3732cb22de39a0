"""Load a Kedro pipeline model with ``mlflow.pyfunc`` and report the copy modes it runs with.

Input (JSON argument): ``model_uri`` (the store comes from MLFLOW_TRACKING_URI).

Output: ``{"copy_mode": the KedroPipelineModel's copy_mode}``.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def main(args: dict[str, Any]) -> dict[str, Any]:
    import mlflow

    model = mlflow.pyfunc.load_model(args["model_uri"])
    return {"copy_mode": model.unwrap_python_model().copy_mode}


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
