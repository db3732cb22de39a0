"""KedroPipelineModel used the way kedro-mlflow documents it, in a fresh interpreter: built on a
one-node inference pipeline whose ``model`` is a pickle in ``folder``, its artifacts extracted,
then each misuse tried, each answer reported.

Input (JSON argument): ``folder``, where the model pickle and the extracted artifacts go.

Output: ``{"artifacts": [extracted artifact names, sorted]}`` and, for each misuse, the message
of the error it raised (null if it raised none; an error of another type ends the script):
``bad_input_name`` (KedroPipelineModelError), ``bad_copy_mode`` (TypeError),
``missing_catalog_entry`` (DatasetNotFoundError), ``wrong_artifacts`` (ValueError).
"""

from __future__ import annotations

import json
import sys
from types import SimpleNamespace
from typing import Any


def predict(model, instances):
    return instances


def main(args: dict[str, Any]) -> dict[str, Any]:
    from kedro.io import DataCatalog, DatasetNotFoundError
    from kedro.pipeline import Pipeline, node
    from kedro_datasets.pickle import PickleDataset
    from kedro_mlflow_starter import KedroPipelineModel
    from kedro_mlflow_starter.errors import KedroPipelineModelError

    folder = args["folder"]
    inference = Pipeline([node(predict, ["model", "instances"], "out")])
    catalog = DataCatalog({"model": PickleDataset(filepath=f"{folder}/model.pkl")})
    catalog.save("model", {"w": 1})
    kpm = KedroPipelineModel(inference, catalog, "instances")
    result: dict[str, Any] = {"artifacts": sorted(kpm.extract_pipeline_artifacts(f"{folder}/artifacts"))}

    result["bad_input_name"] = None
    try:
        kpm.input_name = "nope"
    except KedroPipelineModelError as error:
        result["bad_input_name"] = str(error)

    result["bad_copy_mode"] = None
    try:
        KedroPipelineModel(inference, catalog, "instances", copy_mode=3)
    except TypeError as error:
        result["bad_copy_mode"] = str(error)

    result["missing_catalog_entry"] = None
    try:
        KedroPipelineModel(inference, DataCatalog(), "instances")
    except DatasetNotFoundError as error:
        result["missing_catalog_entry"] = str(error)

    result["wrong_artifacts"] = None
    try:
        kpm.load_context(SimpleNamespace(artifacts={"other": "x"}))  # an MLflow context
    except ValueError as error:
        result["wrong_artifacts"] = str(error)
    return result


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
