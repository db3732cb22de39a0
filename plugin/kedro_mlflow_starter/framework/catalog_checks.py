"""The catalog checked before anything runs: our datasets built now (Kedro builds lazily, too late for
a misspelt ``type:`` or a bad argument) and the pipeline model's inputs checked."""

from __future__ import annotations

import difflib
import inspect
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from kedro.io.core import DatasetError

from kedro_mlflow_starter import compat
from kedro_mlflow_starter import io as our_io
from kedro_mlflow_starter.errors import CatalogEntryError
from kedro_mlflow_starter.kedro_names import is_parameter
from kedro_mlflow_starter.models.contract import check_model_inputs_in_catalog
from kedro_mlflow_starter.pipeline import PipelineML

if TYPE_CHECKING:  # pragma: no cover
    from kedro.io import DataCatalog
    from kedro.pipeline import Pipeline

_OUR_PACKAGE = our_io.__name__
_OUR_CLASSES = frozenset(our_io.__all__)


def _in_our_package(module: str) -> bool:
    return module == _OUR_PACKAGE or module.startswith(_OUR_PACKAGE + ".")


def is_mlflow_dataset_type(dataset_type: Any) -> bool:
    """True when a catalog ``type:`` (a string or a class) names one of our datasets."""
    if isinstance(dataset_type, type):
        module, name = dataset_type.__module__, dataset_type.__qualname__
    elif isinstance(dataset_type, str):
        module, _, name = dataset_type.rpartition(".")
    else:
        return False
    return name in _OUR_CLASSES and _in_our_package(module)


def build_mlflow_datasets(catalog: DataCatalog, names: Iterable[str] | None = None) -> None:
    """Build every MLflow dataset of ``catalog`` (and of ``names``, resolved through its dataset factories) now,
    or raise ``CatalogEntryError`` naming the entry."""
    candidates = list(catalog.keys())
    candidates += [name for name in names or () if name not in candidates]
    for name in candidates:
        dataset_type = _declared_type(catalog, name)
        if isinstance(dataset_type, str) and _in_our_package(dataset_type.rpartition(".")[0]) \
                and not is_mlflow_dataset_type(dataset_type):
            raise CatalogEntryError(_unknown_type_message(name, dataset_type))
        if not is_mlflow_dataset_type(dataset_type):
            continue
        _keep_registry_version(catalog, name, dataset_type)
        try:
            catalog.get(name)
        except DatasetError as error:
            raise CatalogEntryError(_invalid_entry_message(name, dataset_type, error)) from error


def close_dataset_type(dataset_type: Any) -> str | None:
    """The one of our dataset names that a misspelt ``type:`` most likely meant, or None."""
    if not isinstance(dataset_type, str):
        return None
    name = dataset_type.rpartition(".")[2]
    if name in _OUR_CLASSES:
        return None
    matches = difflib.get_close_matches(name, sorted(_OUR_CLASSES), n=1, cutoff=0.8)
    return matches[0] if matches else None


def _unknown_type_message(name: str, dataset_type: Any) -> str:
    guess = close_dataset_type(dataset_type)
    fix = (f"did you mean `type: {_OUR_PACKAGE}.{guess}`?" if guess else
           f"our datasets are {', '.join(sorted(_OUR_CLASSES))}.")
    return (f"Catalog entry '{name}' in conf/*/catalog.yml: `type: {dataset_type}` names no dataset; {fix} "
            "(docs/datasets.md lists each one with its arguments).")


_UNEXPECTED_ARGUMENT = r"\b{cls}\.__init__\(\) got an unexpected keyword argument '(\w+)'"


def _invalid_entry_message(name: str, dataset_type: Any, error: DatasetError) -> str:
    """Our dataset's own message (it already says the fix), or, for an unknown argument, the close match."""
    short = _short_type(dataset_type)
    chain: list[BaseException] = []
    cause: BaseException | None = error
    while cause is not None and cause not in chain:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    for cause in chain:  # our class's own argument, not one of a dataset it wraps
        match = re.search(_UNEXPECTED_ARGUMENT.format(cls=short), str(cause)) if isinstance(cause, TypeError) else None
        if match:
            accepted = _arguments_of(short)
            guess = difflib.get_close_matches(match[1], accepted, n=1, cutoff=0.6)
            fix = f"did you mean `{guess[0]}:`?" if guess else "remove it."
            return (f"Catalog entry '{name}' ({short}) is invalid: conf/*/catalog.yml gives it an unknown "
                    f"argument `{match[1]}:`; {fix} {short} takes: {', '.join(accepted)}.")
    # Kedro wraps the dataset's own message in generic text; ours already says the fix.
    reason = error.__cause__ if isinstance(error.__cause__, DatasetError) else error
    return f"Catalog entry '{name}' ({short}) is invalid:\n{str(reason).strip()}"


def _arguments_of(short_type: str) -> list[str]:
    cls = getattr(our_io, short_type)
    return [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "args", "kwargs")]


def _keep_registry_version(catalog: DataCatalog, name: str, dataset_type: Any) -> None:
    """Pass a registry entry's ``version:`` on as ``model_version:`` (Kedro drops its reserved ``version:``: the
    latest model would load instead of the one asked for)."""
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


def _declared_type(catalog: DataCatalog, name: str) -> Any:
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


def check_catalog_before_run(pipeline: Pipeline, catalog: DataCatalog) -> None:
    """Build every catalog entry the pipeline uses and check the pipeline model's inputs, so that a misspelt
    ``type:`` or an unpersisted model artifact fails before the MLflow run is opened."""
    build_mlflow_datasets(catalog, names=pipeline.datasets())  # dataset-factory entries too
    for name in sorted(pipeline.datasets()):
        if not is_parameter(name) and name in catalog:
            try:  # the declared type, before get: a failed get drops the entry
                dataset_type = _declared_type(catalog, name)
            except Exception:  # noqa: BLE001 - only used to improve a message
                dataset_type = None
            try:
                catalog.get(name)
            except DatasetError as error:
                if close_dataset_type(dataset_type) is None:
                    raise
                # `type: MlflowArtifactDatset` without our package: Kedro's hint is to pip install kedro-datasets
                raise CatalogEntryError(_unknown_type_message(name, dataset_type)) from error
    if isinstance(pipeline, PipelineML):
        check_model_inputs_in_catalog(pipeline.artifact_names, catalog, after_run=True)
