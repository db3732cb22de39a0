"""MlflowModelLocalFileSystemDataset: a model folder on the local disk, loaded in a fresh interpreter."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from kedro.io import DataCatalog
from kedro.io.core import DatasetError

from kedro_mlflow_starter.framework.catalog_checks import build_mlflow_datasets
from kedro_mlflow_starter.io import MlflowModelLocalFileSystemDataset
from tests.io_fixtures import PKG, X, predict_in_fresh_interpreter, regressor


def test_local_model_folder_round_trip_and_fresh_interpreter(tmp_path: Path) -> None:
    model = regressor()
    dataset = MlflowModelLocalFileSystemDataset(filepath=str(tmp_path / "reg"), flavor="mlflow.sklearn")
    assert not dataset.exists()
    dataset.save(model)

    assert dataset.exists() and (tmp_path / "reg" / "MLmodel").is_file()
    assert any(line.startswith("scikit-learn==") for line in (tmp_path / "reg" / "requirements.txt").read_text().split())
    np.testing.assert_allclose(dataset.load().predict(X), model.predict(X))
    np.testing.assert_allclose(predict_in_fresh_interpreter(str(tmp_path / "reg")), model.predict(X))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reg"]  # no staging folder left behind


def test_local_model_overwrite_failing_midway_keeps_the_previous_model(tmp_path: Path) -> None:
    dataset = MlflowModelLocalFileSystemDataset(filepath=str(tmp_path / "reg"), flavor="mlflow.sklearn")
    good = regressor()
    dataset.save(good)
    broken = regressor(5.0)
    broken.lock = threading.Lock()  # skops refuses it after it started writing the model

    with pytest.raises(DatasetError):
        dataset.save(broken)

    np.testing.assert_allclose(dataset.load().predict(X), good.predict(X))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reg"]
    dataset.save(regressor(2.0))  # and a later good save replaces it
    np.testing.assert_allclose(dataset.load().predict(X), regressor(2.0).predict(X))


def test_local_model_versioned(tmp_path: Path) -> None:
    catalog = DataCatalog.from_config(
        {"reg": {"type": PKG + "MlflowModelLocalFileSystemDataset", "flavor": "mlflow.sklearn",
                 "filepath": str(tmp_path / "reg"), "versioned": True}}
    )
    build_mlflow_datasets(catalog)
    catalog.save("reg", regressor(2.0))
    [version] = list((tmp_path / "reg").iterdir())
    assert (version / "reg" / "MLmodel").is_file()
    np.testing.assert_allclose(catalog.load("reg").predict(X), regressor(2.0).predict(X))


def test_local_model_refuses_remote_paths() -> None:
    with pytest.raises(DatasetError, match=r"writes to the local disk.*MlflowModelTrackingDataset"):
        MlflowModelLocalFileSystemDataset(filepath="s3://bucket/model", flavor="mlflow.sklearn")
