"""Load a model with ``mlflow.pyfunc`` and print its predictions as JSON.

Input (JSON argument): ``model_uri``; the rows as ``csv`` (a path, optionally ``head``), ``columns``
(a dict of lists) or ``array`` (a nested list); optional ``column`` to print one output column,
``params`` for inference params, ``unimportable`` (a package that must not be importable here).
"""

import importlib.util
import json
import sys

import mlflow
import numpy as np
import pandas as pd

args = json.loads(sys.argv[1])
for package in args.get("unimportable", []):
    assert importlib.util.find_spec(package) is None, f"{package} must not be importable here"
model = mlflow.pyfunc.load_model(args["model_uri"])
if "csv" in args:
    rows = pd.read_csv(args["csv"])
    rows = rows.head(args["head"]) if "head" in args else rows
elif "columns" in args:
    rows = pd.DataFrame(args["columns"])
else:
    rows = np.array(args["array"])
predictions = model.predict(rows, params=args.get("params"))
if isinstance(predictions, pd.DataFrame):
    predictions = predictions[args["column"]] if "column" in args else predictions.to_dict(orient="list")
print(json.dumps(predictions.tolist() if hasattr(predictions, "tolist") else predictions, default=str))
