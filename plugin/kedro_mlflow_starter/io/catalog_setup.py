"""Prepare the catalog's MLflow datasets when the catalog is created.

Kedro 1.x builds datasets lazily, on first use. For our datasets that would be too late:
a bad entry (unknown flavor, wrapped type that does not exist...) must fail before any
node runs, and defaults that depend on the entry name (a metric's ``key``, a model's
``name``) must be set where the name is known. So the hook calls
``bind_mlflow_datasets`` from ``after_catalog_created``: it builds our datasets, and only
ours, and gives them their entry name.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kedro.io.core import DatasetError

_OUR_PACKAGE = "kedro_mlflow_starter.io"
_OUR_CLASSES = frozenset(
    {
        "MlflowArtifactDataset",
        "MlflowModelTrackingDataset",
        "MlflowModelLocalFileSystemDataset",
        "MlflowModelRegistryDataset",
        "MlflowMetricDataset",
        "MlflowMetricHistoryDataset",
        "MlflowMetricsHistoryDataset",
    }
)


def is_mlflow_dataset_type(dataset_type: Any) -> bool:
    """True when a catalog ``type:`` (a string or a class) names one of our datasets."""
    if isinstance(dataset_type, type):
        module, name = dataset_type.__module__, dataset_type.__qualname__
    elif isinstance(dataset_type, str):
        module, _, name = dataset_type.rpartition(".")
    else:
        return False
    return name in _OUR_CLASSES and (module == _OUR_PACKAGE or module.startswith(_OUR_PACKAGE + "."))


def bind_mlflow_datasets(catalog: Any, names: Iterable[str] | None = None) -> None:
    """Build every MLflow dataset of ``catalog`` now and fill in its name-based defaults.

    Args:
        catalog: The Kedro ``DataCatalog`` just created.
        names: Extra dataset names to resolve through the catalog's dataset factories
            (e.g. a pipeline's datasets); entries written out in the catalog are always
            handled.

    Raises:
        DatasetError: naming the catalog entry, when one of our datasets cannot be built.
    """
    candidates = list(catalog.keys())
    candidates += [name for name in names or () if name not in candidates]
    for name in candidates:
        dataset_type = _declared_type(catalog, name)
        if not is_mlflow_dataset_type(dataset_type):
            continue
        _keep_registry_version(catalog, name, dataset_type)
        try:
            dataset = catalog.get(name)
        except DatasetError as error:
            # Kedro wraps the dataset's own message in generic text; ours already says the fix.
            reason = error.__cause__ if isinstance(error.__cause__, DatasetError) else error
            raise DatasetError(
                f"Catalog entry '{name}' ({_short_type(dataset_type)}) is invalid:\n{reason}"
            ) from error
        bind = getattr(dataset, "_bind_catalog_name", None)
        if bind is not None:
            bind(name)


def _keep_registry_version(catalog: Any, name: str, dataset_type: Any) -> None:
    """Pass a registry entry's ``version:`` on as ``model_version:``.

    Kedro reserves ``version:`` and drops it (with a warning) when it builds a dataset,
    which would silently load the latest model instead of the one asked for.
    """
    lazy = getattr(catalog, "_lazy_datasets", {}).get(name)
    if lazy is None or "version" not in lazy.config:
        return
    if _short_type(dataset_type) != "MlflowModelRegistryDataset":
        return
    config = dict(lazy.config)
    version = config.pop("version")
    if "model_version" in config and config["model_version"] != version:
        raise DatasetError(
            f"Catalog entry '{name}' (MlflowModelRegistryDataset) gives both `version: {version}` "
            f"and `model_version: {config['model_version']}`; keep only `model_version:`."
        )
    config["model_version"] = version
    lazy.config = config


def _declared_type(catalog: Any, name: str) -> Any:
    """The ``type:`` of an entry, read from its config so other datasets stay unbuilt."""
    lazy = getattr(catalog, "_lazy_datasets", {}).get(name)
    if lazy is not None:
        return lazy.config.get("type")
    materialized = getattr(catalog, "_datasets", {}).get(name)
    if materialized is not None:
        return type(materialized)
    resolver = getattr(catalog, "config_resolver", None)
    if resolver is not None and name in catalog:
        return (resolver.resolve_pattern(name) or {}).get("type")
    return None


def _short_type(dataset_type: Any) -> str:
    if isinstance(dataset_type, type):
        return dataset_type.__qualname__
    return str(dataset_type).rpartition(".")[2]
