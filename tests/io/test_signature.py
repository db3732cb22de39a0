"""A model's signature and input example written in the catalog (MlflowModelTrackingDataset)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from kedro.io.core import DatasetError
from sklearn.linear_model import LinearRegression

from tests.io_fixtures import PKG, Run, catalog_of
X = pd.DataFrame({"engines": [1.0, 2.0, 3.0, 4.0], "passenger_capacity": [10, 20, 30, 40]})
Y = pd.Series([2.0, 4.1, 5.9, 8.2], name="price")


def model_info(run: Run, name: str):
    import mlflow

    (model,) = run.client.search_logged_models([run.store.experiment_id],
                                               filter_string=f"source_run_id = '{run.run_id}' AND name = '{name}'")
    return mlflow.models.get_model_info(f"models:/{model.model_id}")


def test_a_yaml_signature_becomes_the_models_signature(run: Run) -> None:
    catalog = catalog_of({"regressor": {
        "type": PKG + "MlflowModelTrackingDataset", "flavor": "mlflow.sklearn",
        "save_args": {"signature": {"inputs": {"engines": "double", "passenger_capacity": "long"},
                                    "outputs": [{"name": "price", "type": "double"}]}},
    }})
    catalog.save("regressor", LinearRegression().fit(X, Y))

    signature = model_info(run, "regressor").signature
    assert signature.inputs.input_names() == ["engines", "passenger_capacity"]
    assert [t.name for t in signature.inputs.input_types()] == ["double", "long"]
    assert signature.outputs.input_names() == ["price"]


def test_signature_inferred_from_an_input_example_read_from_a_dataset(run: Run, tmp_path: Path) -> None:
    X.to_parquet(tmp_path / "X_test.parquet")
    catalog = catalog_of({"regressor": {
        "type": PKG + "MlflowModelTrackingDataset", "flavor": "mlflow.sklearn",
        "save_args": {"signature": "infer", "input_example": {
            "dataset": {"type": "pandas.ParquetDataset", "filepath": (tmp_path / "X_test.parquet").as_posix()},
            "rows": 2}},
    }})
    catalog.save("regressor", LinearRegression().fit(X, Y))

    info = model_info(run, "regressor")
    assert info.signature.inputs.input_names() == ["engines", "passenger_capacity"]
    assert info.signature.outputs is not None  # from the model's predictions on the example
    assert info.saved_input_example_info is not None
    import mlflow

    example = mlflow.models.Model.load(info.model_uri).load_input_example(
        mlflow.artifacts.download_artifacts(info.model_uri, dst_path=(tmp_path / "dl").as_posix()))
    assert len(example) == 2


@pytest.mark.parametrize(("save_args", "message"), [
    ({"signature": {"inputs": {"engines": "dubble"}}},
     r"'regressor' \(MlflowModelTrackingDataset\): save_args.signature.inputs.engines: type 'dubble' is not one of "
     r"MLflow's column types: boolean, integer, long, float, double"),
    ({"signature": "auto"}, r"`save_args.signature: auto` is not valid"),
    ({"signature": "infer"}, r"`save_args.signature: infer` needs `save_args.input_example`"),
    ({"signature": {"outputs": {"price": "double"}}}, r"takes `inputs` \(required\) and `outputs`"),
    ({"input_example": {"dataset": {"type": "pandas.CSVDataset"}, "rows": 0}}, r"rows` must be a whole number >= 1"),
])
def test_a_bad_catalog_signature_fails_when_the_catalog_is_created(save_args, message) -> None:
    with pytest.raises(DatasetError, match=message):
        catalog_of({"regressor": {"type": PKG + "MlflowModelTrackingDataset", "flavor": "mlflow.sklearn",
                                  "save_args": save_args}})
