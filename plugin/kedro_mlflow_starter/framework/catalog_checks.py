"""Check and prepare the catalog's MLflow datasets before anything runs.

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

from kedro_mlflow_starter import compat

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
    if _short_type(dataset_type) != "MlflowModelRegistryDataset":
        return
    lazy_config = compat.lazy_dataset_config(catalog, name)
    if lazy_config is None or "version" not in lazy_config:
        return
    config = dict(lazy_config)
    version = config.pop("version")
    if "model_version" in config and config["model_version"] != version:
        raise DatasetError(
            f"Catalog entry '{name}' (MlflowModelRegistryDataset) gives both `version: {version}` "
            f"and `model_version: {config['model_version']}`; keep only `model_version:`."
        )
    config["model_version"] = version
    compat.replace_lazy_dataset_config(catalog, name, config)


def _declared_type(catalog: Any, name: str) -> Any:
    """The ``type:`` of an entry as written, read without building or importing anything:
    other entries may name datasets whose dependencies are not installed."""
    config = compat.lazy_dataset_config(catalog, name)
    if config is not None:
        return config.get("type")
    if name not in catalog:
        return None
    resolver = getattr(catalog, "config_resolver", None)
    resolved = (resolver.resolve_pattern(name) or {}) if resolver is not None else {}
    if resolved.get("type"):
        return resolved["type"]
    return type(catalog.get(name))  # neither lazy nor a pattern: built already


def _short_type(dataset_type: Any) -> str:
    if isinstance(dataset_type, type):
        return dataset_type.__qualname__
    return str(dataset_type).rpartition(".")[2]


def check_catalog_before_run(pipeline: Any, catalog: Any) -> None:
    """Build every catalog entry the pipeline uses and check the pipeline model's inputs.

    The runner would build them a moment later; doing it first reports a misspelt ``type:``,
    a bad argument or an unpersisted model artifact before any node runs and before the
    MLflow run is opened.
    """
    from kedro_mlflow_starter.models.contract import check_model_inputs_in_catalog
    from kedro_mlflow_starter.pipeline import PipelineML

    bind_mlflow_datasets(catalog, names=pipeline.datasets())  # dataset-factory entries too
    for name in sorted(pipeline.datasets()):
        if name != "parameters" and not name.startswith("params:") and name in catalog:
            catalog.get(name)
    if isinstance(pipeline, PipelineML):
        check_model_inputs_in_catalog(pipeline.artifact_names, catalog, after_run=True)
