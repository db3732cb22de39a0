"""Every private Kedro, kedro-datasets and MLflow surface the plugin relies on, in one place.

Each function here wraps one surface that has no public equivalent in Kedro 1.x or MLflow
3.x, says why it is needed, and fails with ``PrivateSurfaceChangedError`` naming the
surface when a release removes or renames it. ``tests/test_compat.py`` exercises each one
against the installed releases, so an upgrade that breaks one fails there by name, not
somewhere deep in a ``kedro run``. Nothing outside this module touches a private name of
another package.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import PurePosixPath
from typing import Any

from kedro_mlflow_starter.errors import KedroMlflowError


class PrivateSurfaceChangedError(KedroMlflowError, AttributeError):
    """A private surface of Kedro, kedro-datasets or MLflow is not what this release expects."""

    def __init__(self, surface: str, detail: str = "") -> None:
        super().__init__(
            f"kedro-mlflow-starter relies on {surface}, which the installed release does not provide"
            f"{': ' + detail if detail else ''}. Install the Kedro/MLflow versions this release supports "
            "(see pyproject.toml) or upgrade kedro-mlflow-starter."
        )
        self.surface = surface


def _attribute(obj: Any, name: str, surface: str) -> Any:
    try:
        return getattr(obj, name)
    except AttributeError:
        raise PrivateSurfaceChangedError(surface, f"{type(obj).__name__} has no attribute {name!r}") from None


# -- Kedro: the catalog ----------------------------------------------------------------------
# A registry entry's `version:` is reserved by Kedro and dropped when the dataset is built;
# the only moment to pass it on as `model_version:` is while the entry is still a lazy config.

def lazy_dataset_config(catalog: Any, name: str) -> dict[str, Any] | None:
    """The raw config of a catalog entry not built yet (``DataCatalog._lazy_datasets``), else None."""
    lazy = _attribute(catalog, "_lazy_datasets", "kedro DataCatalog._lazy_datasets").get(name)
    return None if lazy is None else _attribute(lazy, "config", "kedro _LazyDataset.config")


def replace_lazy_dataset_config(catalog: Any, name: str, config: dict[str, Any]) -> None:
    """Replace the raw config of a catalog entry that is not built yet."""
    lazy = _attribute(catalog, "_lazy_datasets", "kedro DataCatalog._lazy_datasets")[name]
    lazy.config = config


# -- Kedro: datasets and nodes ---------------------------------------------------------------

def dataset_init_config(dataset: Any) -> dict[str, Any] | None:
    """The ``type`` and constructor arguments a dataset was built with (``_init_config``).

    Kedro's own ``DataCatalog.to_config`` reads it; there is no public per-dataset form.
    None for datasets that do not record it (ones not derived from ``AbstractDataset``).
    """
    init_config = getattr(dataset, "_init_config", None)
    return dict(init_config()) if callable(init_config) else None


def node_call_parts(node: Any) -> tuple[Callable[..., Any], Any, Any, Callable[[Any], dict[str, Any]]]:
    """A node's function, its inputs and outputs *as declared* (str, list or dict), and its
    output-to-dict converter.

    ``Node.run`` is public but logs "Running node" at INFO on every call: a served model would
    log a line per prediction. A pipeline model calls the function itself instead.
    """
    return (
        node.func,
        _attribute(node, "_inputs", "kedro Node._inputs"),
        _attribute(node, "_outputs", "kedro Node._outputs"),
        _attribute(node, "_outputs_to_dictionary", "kedro Node._outputs_to_dictionary"),
    )


# -- kedro-datasets: where a file dataset writes ---------------------------------------------
# An artifact dataset logs the file its wrapped dataset just wrote. Kedro's datasets keep the
# target path, filesystem and version in attributes with no public accessor.

def is_partitioned(dataset: Any) -> bool:
    return hasattr(dataset, "_partition_to_path") and hasattr(dataset, "_path")


def has_file_target(dataset: Any) -> bool:
    return is_partitioned(dataset) or hasattr(dataset, "_filepath")


def file_target(dataset: Any) -> Any:
    """The path a file dataset (or the folder a partitioned dataset) is configured with."""
    if is_partitioned(dataset):
        return dataset._path
    return _attribute(dataset, "_filepath", "kedro-datasets AbstractDataset._filepath")


def saved_path(dataset: Any) -> PurePosixPath:
    """Where the last save wrote: the version folder's file for versioned datasets."""
    from kedro.io.core import AbstractVersionedDataset

    if isinstance(dataset, AbstractVersionedDataset) and _attribute(dataset, "_version", "kedro _version") is not None:
        versioned_path = _attribute(dataset, "_get_versioned_path", "kedro AbstractVersionedDataset._get_versioned_path")
        return versioned_path(dataset.resolve_save_version())
    return file_target(dataset)


def partitions_root(dataset: Any) -> str:
    """The local-form root folder of a partitioned dataset."""
    filesystem = _attribute(dataset, "_filesystem", "kedro-datasets PartitionedDataset._filesystem")
    return filesystem._strip_protocol(_attribute(dataset, "_normalized_path",
                                                 "kedro-datasets PartitionedDataset._normalized_path"))


def partition_path(dataset: Any, partition_id: str) -> str:
    return _attribute(dataset, "_partition_to_path", "kedro-datasets PartitionedDataset._partition_to_path")(
        partition_id
    )


def protocol(dataset: Any) -> str:
    """The fsspec protocol a file dataset writes to (``file`` for a local disk)."""
    return getattr(dataset, "_protocol", "file")


def filesystem(dataset: Any) -> Any:
    """The fsspec filesystem a file dataset writes to."""
    found = getattr(dataset, "_fs", None) or getattr(dataset, "_filesystem", None)
    if found is None:
        raise PrivateSurfaceChangedError("kedro-datasets AbstractDataset._fs / _filesystem")
    return found


# -- MLflow: the fluent API's store ------------------------------------------------------------
# `Model.log` (used to log a pipeline model into a run addressed by id) reaches the store
# through MLflow's fluent helpers. When user code called `mlflow.set_tracking_uri` for
# another store, they must be pinned to ours for the call and restored exactly, including
# to "never set", for which MLflow has no public setter.

@contextlib.contextmanager
def fluent_store(tracking_uri: str, registry_uri: str | None) -> Iterator[None]:
    """MLflow's fluent helpers talk to this store inside the block; restored exactly after."""
    import os

    import mlflow
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    same = mlflow.get_tracking_uri() == tracking_uri and (
        registry_uri is None or mlflow.get_registry_uri() == registry_uri
    )
    if same:
        yield
        return
    saved_env = {key: os.environ.get(key) for key in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    saved_tracking = _attribute(tracking_utils, "_tracking_uri", "mlflow tracking utils._tracking_uri")
    saved_registry = _attribute(registry_utils, "_registry_uri", "mlflow registry utils._registry_uri")
    try:
        mlflow.set_tracking_uri(tracking_uri)
        if registry_uri:
            mlflow.set_registry_uri(registry_uri)
        yield
    finally:
        if saved_tracking:
            mlflow.set_tracking_uri(saved_tracking)
        tracking_utils._tracking_uri = saved_tracking
        registry_utils._registry_uri = saved_registry
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# -- Kedro: the name of the catalog entry a dataset is built for ------------------------------
# A dataset is built by `AbstractDataset.from_config(name, config)` and never told its entry
# name. With the hook, `after_catalog_created` binds the name; without it (hooks disabled, a
# catalog built by hand) this is the only way for an error or warning to name the entry the
# user wrote. Reads the documented `name` argument of that public classmethod from the stack.

def catalog_entry_being_built() -> str | None:
    """The catalog entry name when called while Kedro's ``AbstractDataset.from_config`` builds it."""
    import sys

    from kedro.io.core import AbstractDataset

    code = getattr(AbstractDataset.from_config, "__func__", AbstractDataset.from_config).__code__
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code is code:
            name = frame.f_locals.get("name")
            if not isinstance(name, str):
                raise PrivateSurfaceChangedError(
                    "the `name` argument of kedro AbstractDataset.from_config", f"got {name!r}"
                )
            return name
        frame = frame.f_back
    return None


# -- MLflow: the fluent active run of a node ----------------------------------------------------
# Inside a node, `mlflow.active_run()` must be the Kedro run (user code reads its id or tags
# it). `mlflow.start_run(run_id=...)` makes it active in the node's thread, but the only public
# way to make it inactive again, `mlflow.end_run()`, also terminates the run (and unsets
# MLFLOW_RUN_ID). Taking it off the thread's stack leaves its status alone.

def leave_fluent_run(run_id: str) -> bool:
    """Take ``run_id`` off the top of this thread's fluent active-run stack, without ending it."""
    from mlflow.tracking import fluent

    holder = _attribute(fluent, "_active_run_stack", "mlflow.tracking.fluent._active_run_stack")
    stack = holder.get()
    if not isinstance(stack, list):
        raise PrivateSurfaceChangedError("mlflow.tracking.fluent._active_run_stack", f"holds {type(stack).__name__}")
    if stack and stack[-1].info.run_id == run_id:
        stack.pop()
        return True
    return False


# -- MLflow: request header providers named in mlflow.yml ---------------------------------------
# MLflow's public way to add a request header provider is a package entry point; kedro-mlflow's
# mlflow.yml names a class (and its constructor arguments) instead, so the class is added to the
# registry that MLflow's entry points fill.

def register_request_header_provider(provider: Any) -> None:
    """Make MLflow ask ``provider`` (an instance) for headers on every request to the server."""
    from mlflow.tracking.request_header import registry

    holder = _attribute(registry, "_request_header_provider_registry",
                        "mlflow.tracking.request_header.registry._request_header_provider_registry")
    providers = _attribute(holder, "_registry", "mlflow RequestHeaderProviderRegistry._registry")
    providers[:] = [p for p in providers if type(p) is not type(provider)]
    providers.append(provider)


# -- MLflow: autologging's thread pools ----------------------------------------------------------
# Autologging sends its params and metrics through two module-level ThreadPoolExecutors. A process
# forked after a fit (ParallelRunner's fork workers, after an autologged run in the same notebook)
# inherits them without their threads: its first autologged fit then waits forever.

_AUTOLOGGING_POOLS = (("mlflow.utils.autologging_utils.client", "_AUTOLOGGING_QUEUEING_CLIENT_THREAD_POOL"),
                      ("mlflow.utils.autologging_utils.metrics_queue", "_thread_pool"))


def renew_autologging_pools() -> None:
    """Give this (forked) process autologging thread pools of its own, sized as MLflow sized them."""
    from concurrent.futures import ThreadPoolExecutor

    for module_name, attribute in _AUTOLOGGING_POOLS:
        module = sys.modules.get(module_name)
        if module is None:  # never imported: MLflow makes it when needed
            continue
        pool = _attribute(module, attribute, f"{module_name}.{attribute}")
        setattr(module, attribute, ThreadPoolExecutor(
            max_workers=_attribute(pool, "_max_workers", "ThreadPoolExecutor._max_workers"),
            thread_name_prefix=_attribute(pool, "_thread_name_prefix", "ThreadPoolExecutor._thread_name_prefix")))


# -- Optuna: a trial's storage id ----------------------------------------------------------------
# A sweep's workers take their trials from the study's queue of WAITING trials themselves (the
# storage's public ``set_trial_state_values`` claims one atomically), so that a worker never makes
# a trial beyond the sweep's budget, as ``Study.ask`` does when the queue is empty. The storage
# addresses a trial by its id, which ``FrozenTrial`` only keeps privately.

def optuna_trial_id(frozen_trial: Any) -> int:
    """The storage id of an Optuna ``FrozenTrial`` (``FrozenTrial._trial_id``)."""
    return _attribute(frozen_trial, "_trial_id", "optuna FrozenTrial._trial_id")


# -- Kedro: the command line ---------------------------------------------------------------------
# `kedro mlflow run open --params` and `kedro mlflow sweep --params` read their values exactly as
# `kedro run --params` does; Kedro's click callback for that has no public name.

def split_params(ctx: Any, param: Any, value: str) -> dict[str, Any]:
    """``a=1,b.c=x`` -> ``{"a": 1, "b": {"c": "x"}}`` (``kedro.framework.cli.utils._split_params``), a click callback."""
    from kedro.framework.cli import utils

    return _attribute(utils, "_split_params", "kedro.framework.cli.utils._split_params")(ctx, param, value)
