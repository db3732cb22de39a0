"""MlflowModelRegistryDataset against a real SQLite registry."""

from __future__ import annotations

import numpy as np
import pytest
from kedro.io import DataCatalog
from kedro.io.core import DatasetError

from kedro_mlflow_starter.framework.catalog_checks import build_mlflow_datasets
from kedro_mlflow_starter.io import MlflowModelRegistryDataset, MlflowModelTrackingDataset
from tests.io_fixtures import PKG, X, Run, regressor


def test_registration_and_registry_dataset(run: Run) -> None:
    model = regressor(3.0)
    MlflowModelTrackingDataset(
        flavor="mlflow.sklearn", save_args={"name": "reg", "registered_model_name": "io-test-reg"}
    ).save(model)
    run.client.set_registered_model_alias("io-test-reg", "champion", "1")

    by_alias = MlflowModelRegistryDataset(model_name="io-test-reg", alias="champion")
    np.testing.assert_allclose(by_alias.load().predict(X), model.predict(X))
    by_version = MlflowModelRegistryDataset(model_name="io-test-reg", model_version=1, flavor="mlflow.sklearn")
    np.testing.assert_allclose(by_version.load().predict(X), model.predict(X))
    uri = MlflowModelTrackingDataset(flavor="mlflow.sklearn", load_args={"model_uri": "models:/io-test-reg@champion"})
    np.testing.assert_allclose(uri.load().predict(X), model.predict(X))

    with pytest.raises(DatasetError, match=r"no registered model named 'no-such-model'.*registered_model_name"):
        MlflowModelRegistryDataset(model_name="no-such-model").load()
    with pytest.raises(DatasetError, match=r"'io-test-reg' has no alias 'staging'.*set_registered_model_alias"):
        MlflowModelRegistryDataset(model_name="io-test-reg", alias="staging").load()
    with pytest.raises(DatasetError, match=r"read-only.*registered_model_name: io-test-reg"):
        by_alias.save(model)


@pytest.mark.parametrize("version_key", ["version", "model_version"])
def test_registry_with_alias_and_version_fails_at_catalog_creation(version_key: str) -> None:
    catalog = DataCatalog.from_config(
        {"champion": {"type": PKG + "MlflowModelRegistryDataset", "model_name": "m", "alias": "a", version_key: 2}}
    )
    with pytest.raises(DatasetError, match=r"(?s)Catalog entry 'champion'.*either `alias:` or `model_version:`, not both"):
        build_mlflow_datasets(catalog)


def test_registry_version_key_in_the_catalog_is_kept() -> None:
    catalog = DataCatalog.from_config(
        {"pinned": {"type": PKG + "MlflowModelRegistryDataset", "model_name": "m", "version": 4}}
    )
    build_mlflow_datasets(catalog)
    assert catalog["pinned"].model_uri == "models:/m/4"


def test_registry_dataset_accepts_kedro_mlflow_arguments() -> None:
    """Issue 12 item 6: ``stage_or_version`` and ``pyfunc_workflow`` as kedro-mlflow documents them."""
    catalog = DataCatalog.from_config(
        {
            "by_number": {"type": PKG + "MlflowModelRegistryDataset", "model_name": "m", "stage_or_version": 3,
                          "pyfunc_workflow": "python_model"},
            "newest": {"type": PKG + "MlflowModelRegistryDataset", "model_name": "m", "stage_or_version": "latest"},
            "staged": {"type": PKG + "MlflowModelRegistryDataset", "model_name": "m", "stage_or_version": "Production"},
        }
    )
    build_mlflow_datasets(catalog)
    assert [catalog[name].model_uri for name in ("by_number", "newest", "staged")] == [
        "models:/m/3", "models:/m/latest", "models:/m/Production"]
    with pytest.raises(DatasetError, match=r"either `alias:` or `stage_or_version:`"):
        MlflowModelRegistryDataset(model_name="m", alias="champion", stage_or_version="Production")
