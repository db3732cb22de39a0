"""Load MLflow models in this (fresh) interpreter and predict, as a serving user would.

Input (JSON argument):

- ``tracking_uri`` (optional): given to ``mlflow.set_tracking_uri`` before loading;
- ``must_not_import`` (optional): packages looked up with ``importlib.util.find_spec`` before
  anything is imported (reported in ``importable``: the project or the plugin must not be there);
- ``input``: the rows, as ``{"csv": path}`` (read with pandas, relative to the working folder),
  ``{"columns": {name: values}}`` (a DataFrame) or ``{"array": nested list}`` (a numpy array);
- ``predictions``: ``{key: spec}``, each spec with ``model_uri``, ``flavor`` (``pyfunc``, the
  default, or ``sklearn``), ``dst_path`` (optional: where the model is downloaded), ``rows``
  (optional: only the first rows), ``columns`` (optional: only these input columns), ``params``
  (optional: inference params) and ``method`` (optional: another method than ``predict``, e.g.
  ``predict_proba`` of a scikit-learn model). A model given twice is loaded once.
- ``module_files`` (optional): modules whose ``__file__`` to report once the models have predicted.

Output: ``{"importable": {package: bool}, "predictions": {key: prediction}, "module_files": {...}}``,
a prediction being ``{"length": n, "columns": [...], "data": {column: values}}`` for a DataFrame
and ``{"length": n, "values": [...]}`` otherwise.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from typing import Any


def _rows(spec: dict[str, Any]) -> Any:
    if "csv" in spec:
        import pandas as pd

        return pd.read_csv(spec["csv"])
    if "columns" in spec:
        import pandas as pd

        return pd.DataFrame(spec["columns"])
    import numpy as np

    return np.array(spec["array"])


def _jsonable(prediction: Any) -> dict[str, Any]:
    import pandas as pd

    if isinstance(prediction, pd.DataFrame):
        return {"length": len(prediction), "columns": [str(c) for c in prediction.columns],
                "data": {str(c): prediction[c].tolist() for c in prediction.columns}}
    values = prediction.tolist() if hasattr(prediction, "tolist") else list(prediction)
    return {"length": len(values), "values": values}


def main(args: dict[str, Any]) -> dict[str, Any]:
    importable = {name: importlib.util.find_spec(name) is not None for name in args.get("must_not_import", [])}
    import mlflow

    if args.get("tracking_uri"):
        mlflow.set_tracking_uri(args["tracking_uri"])
    rows = _rows(args["input"])
    loaded: dict[tuple[str, str, str | None], Any] = {}
    predictions = {}
    for key, spec in args["predictions"].items():
        flavor = spec.get("flavor", "pyfunc")
        cache_key = (spec["model_uri"], flavor, spec.get("dst_path"))
        if cache_key not in loaded:
            loader = {"pyfunc": "mlflow.pyfunc", "sklearn": "mlflow.sklearn"}[flavor]
            loaded[cache_key] = importlib.import_module(loader).load_model(spec["model_uri"],
                                                                           dst_path=spec.get("dst_path"))
        model = loaded[cache_key]
        model_input = rows
        if spec.get("columns") is not None:
            model_input = model_input[spec["columns"]]
        if spec.get("rows") is not None:
            rows_wanted = spec["rows"]
            model_input = model_input.head(rows_wanted) if hasattr(model_input, "head") else model_input[:rows_wanted]
        method = getattr(model, spec.get("method", "predict"))
        if spec.get("params") is not None:
            prediction = method(model_input, params=spec["params"])
        else:
            prediction = method(model_input)
        predictions[key] = _jsonable(prediction)
    module_files = {name: sys.modules[name].__file__ for name in args.get("module_files", [])}
    return {"importable": importable, "predictions": predictions, "module_files": module_files}


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1])), default=str))
