"""Log a model into an MLflow run, addressed by id, with ``mlflow.models.Model.log``: any flavor (``log_model``), or a
``PipelineML``'s inference pipeline as a ``KedroPipelineModel`` with its artifacts, code, requirements and signature."""

from __future__ import annotations

import logging
import sys
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from kedro.io import AbstractDataset

from kedro_mlflow_starter import compat
from kedro_mlflow_starter.errors import KedroMlflowPipelineMLError
from kedro_mlflow_starter.models.artifacts import dataset_type
from kedro_mlflow_starter.models.contract import check_model_inputs_in_catalog, is_memory_dataset
from kedro_mlflow_starter.models.requirements import (
    module_imports,
    object_modules,
    plugin_code,
    project_code_paths,
    requirements,
)
from kedro_mlflow_starter.models.snapshots import catalog_of_run_copies
from kedro_mlflow_starter.tracking.current import PublishedEnvironment, current_client, store_uris
from kedro_mlflow_starter.tracking.failures import call_with_retry

if TYPE_CHECKING:  # pragma: no cover
    from kedro.io import DataCatalog
    from mlflow.entities import LoggedModel

    from kedro_mlflow_starter.models import KedroPipelineModel
    from kedro_mlflow_starter.pipeline.pipeline_ml import PipelineML

logger = logging.getLogger(__name__)

AUTO = "auto"
SAMPLE_ROWS = 5
_NROWS_DATASETS = ("CSVDataset", "ExcelDataset")
_PROGRESS_BAR = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"


def log_pipeline_model(pipeline_ml: PipelineML, catalog: DataCatalog, run_id: str, *, produced: Iterable[str] = (),
                       **overrides: Any) -> str:
    """Log ``pipeline_ml``'s inference pipeline as a pyfunc model into run ``run_id``.

    Each artifact is the run's own copy (``models/snapshots.py``) when the run made one; an
    artifact in ``produced`` (a node of the run saved it) must have one. Others (inputs that
    training only read) are read through ``catalog``. ``overrides`` take precedence over the
    ``log_model_kwargs`` given to ``pipeline_ml_factory``. Returns ``models:/<model id>``.
    """
    from kedro_mlflow_starter.models import KedroPipelineModel  # imports mlflow

    kwargs = {**pipeline_ml.log_model_kwargs, **overrides}
    with tempfile.TemporaryDirectory(prefix="kedro-pipeline-model-copies-") as copies, _no_progress_bars():
        own = catalog_of_run_copies(pipeline_ml, catalog, run_id, Path(copies), required=produced)
        model = KedroPipelineModel(pipeline_ml.inference, own, pipeline_ml.input_name, **pipeline_ml.kpm_kwargs)
        return log_kedro_pipeline_model(model, own, run_id, **kwargs)


def check_pipeline_ml_catalog(pipeline_ml: PipelineML, catalog: DataCatalog) -> None:
    """Fail before any node runs when an artifact of the model is not persisted in the catalog
    (a ``MemoryDataset`` is released before the model is logged)."""
    check_model_inputs_in_catalog(pipeline_ml.artifact_names, catalog, after_run=True)


def log_kedro_pipeline_model(  # noqa: PLR0913
    model: KedroPipelineModel,
    catalog: DataCatalog,
    run_id: str,
    *,
    name: str = "model",
    registered_model_name: str | None = None,
    signature: Any = AUTO,
    input_example: Any = AUTO,
    pip_requirements: list[str] | str | None = None,
    extra_pip_requirements: list[str] | str | None = None,
    conda_env: Any = None,
    code_paths: list[str] | None = None,
    metadata: dict[str, Any] | None = None,
    tags: dict[str, Any] | None = None,
    model_type: str | None = None,
    await_registration_for: int | None = None,
) -> str:
    """Log ``model`` (a ``KedroPipelineModel`` built on ``catalog``) into run ``run_id``."""
    import mlflow

    with tempfile.TemporaryDirectory(prefix="kedro-pipeline-model-") as tmp:
        artifacts = model.save_artifacts(Path(tmp) / "artifacts")
        sample = load_sample(catalog, model.input_name) if signature == AUTO or input_example == AUTO else None
        if signature == AUTO:
            signature = infer_model_signature(model, sample)
        if input_example == AUTO:
            input_example = sample
        shipped = [*project_code_paths(node.func for node in model.pipeline.nodes), *(code_paths or [])]
        if pip_requirements is None and conda_env is None:
            pip_requirements = model_requirements(model, sample, shipped)
            if extra_pip_requirements:  # MLflow takes one of the two: the extras join the computed list
                pip_requirements += _as_list(extra_pip_requirements)
                extra_pip_requirements = None
        shipped.append(plugin_code(Path(tmp) / "plugin"))
        description = describe_model(model, sample, signature)
        registration = {} if await_registration_for is None else {"await_registration_for": await_registration_for}
        logged = log_model(
            run_id, mlflow.pyfunc, name=name, tags={"mlflow.note.content": description, **(tags or {})},
            model_type=model_type, python_model=model, artifacts=artifacts, code_paths=shipped or None,
            signature=signature, input_example=input_example, pip_requirements=pip_requirements,
            extra_pip_requirements=extra_pip_requirements, conda_env=conda_env,
            metadata={"description": description, "kedro_input": model.input_name,
                      "kedro_output": model.output_name, **(metadata or {})},
            registered_model_name=registered_model_name, **registration,
        )
    return f"models:/{logged.model_id}"


def log_model(run_id: str, flavor: ModuleType, *, name: str, params: dict[str, Any] | None = None,
              tags: dict[str, Any] | None = None, model_type: str | None = None, **log_kwargs: Any) -> LoggedModel:
    """``Model.log(flavor, run_id=run_id, name=name, **log_kwargs)`` into the session's store; the
    LoggedModel carries the run's params, then ``params``. Returns it, READY."""
    import mlflow
    from mlflow.entities import LoggedModelStatus
    from mlflow.models import Model

    client = current_client()
    run = call_with_retry(lambda: client.get_run(run_id))
    # Created here rather than by Model.log: its params win over the run's, and a Ctrl-C or
    # SIGTERM (not an Exception, which Model.log handles) still leaves the model FAILED.
    logged = call_with_retry(lambda: client.create_logged_model(
        experiment_id=run.info.experiment_id, name=name, source_run_id=run_id,
        params={k: str(v) for k, v in {**run.data.params, **(params or {})}.items()},
        tags={k: str(v) for k, v in (tags or {}).items()} or None, model_type=model_type,
    ))
    tracking_uri, registry_uri = store_uris()
    try:
        with compat.fluent_store(tracking_uri or mlflow.get_tracking_uri(), registry_uri), _quiet_mlflow():
            # One attempt: a retry would log into a model already marked FAILED.
            call_with_retry(lambda: Model.log(artifact_path=None, flavor=flavor, run_id=run_id, name=name,
                                              model_id=logged.model_id, **log_kwargs), delays=())
    except BaseException:
        try:
            if client.get_logged_model(logged.model_id).status != LoggedModelStatus.READY:
                client.finalize_logged_model(logged.model_id, LoggedModelStatus.FAILED)
        except Exception as error:  # noqa: BLE001 - the original error matters more
            logger.debug("Could not mark logged model %s FAILED: %s", logged.model_id, error)
        raise
    return logged


def _as_list(requirements: list[str] | str) -> list[str]:
    """Requirements given as a list, or as the path of a requirements file (as MLflow accepts them)."""
    if isinstance(requirements, str):
        lines = Path(requirements).read_text(encoding="utf-8").splitlines()
        return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    return list(requirements)


def describe_model(model: KedroPipelineModel, sample: Any, signature: Any = None) -> str:
    """What the pipeline model takes and returns, in a sentence or two (shown in the UI)."""
    takes = f"rows like the '{model.input_name}' dataset"
    columns = [str(column) for column in getattr(sample, "columns", [])]
    if columns:
        takes += f" (columns: {', '.join(columns)})"
    gives = f"what the inference pipeline writes to '{model.output_name}'"
    outputs = signature.outputs.input_names() if getattr(signature, "outputs", None) is not None else []
    if outputs:
        gives += f" (columns: {', '.join(map(str, outputs))})"
    params = f" Inference params: {', '.join(model.exposed_params)}." if model.exposed_params else ""
    nodes = ", ".join(node.name for node in model.pipeline.nodes)
    artifacts = ", ".join(model.artifact_names) or "(none)"
    return (
        f"Kedro pipeline model. Input: {takes}. Output: {gives}. Runs the nodes {nodes} with the "
        f"artifacts {artifacts} packed inside.{params} Load it with mlflow.pyfunc.load_model or serve "
        "it with `mlflow models serve`."
    )


def load_sample(catalog: DataCatalog, name: str, rows: int = SAMPLE_ROWS) -> Any:
    """The first ``rows`` rows of dataset ``name`` (None when it holds no data); CSV and Excel
    datasets read only those rows."""
    dataset = catalog.get(name) if hasattr(catalog, "get") else None
    if dataset is None:
        return None
    try:
        if is_memory_dataset(dataset) and not dataset.exists():
            return None
        data = _load_head(dataset, rows)
        if data is None:
            data = catalog.load(name)
    except Exception as error:  # noqa: BLE001 - no sample means no signature, not a failed log
        logger.warning("No signature or input example for the pipeline model: reading '%s' failed: %s", name, error)
        return None
    return _head(data, rows)


def _load_head(dataset: AbstractDataset, rows: int) -> Any:
    config = compat.dataset_init_config(dataset) if type(dataset).__name__ in _NROWS_DATASETS else None
    if config is None or config.get("versioned"):
        return None
    config["load_args"] = {**(config.get("load_args") or {}), "nrows": rows}
    return AbstractDataset.from_config("sample", config).load()


def _head(data: Any, rows: int) -> Any:
    head = getattr(data, "head", None)
    if callable(head):
        return head(rows)
    if isinstance(data, (list, tuple)) or type(data).__name__ == "ndarray":
        return data[:rows]
    return data


def infer_model_signature(model: KedroPipelineModel, sample: Any) -> Any:
    """The model's signature from its prediction on ``sample`` (params included)."""
    if sample is None:
        return None
    from mlflow.models import infer_signature

    try:
        prediction = model.predict(None, sample)
    except Exception as error:
        raise KedroMlflowPipelineMLError(
            f"The inference pipeline fails on the first rows of '{model.input_name}': "
            f"{type(error).__name__}: {error}. The pipeline model would not predict either; fix the "
            "inference nodes (or the data in that dataset) and run again."
        ) from error
    return infer_signature(sample, prediction, params=model.exposed_params or None)


def model_requirements(model: KedroPipelineModel, sample: Any, shipped: list[str]) -> list[str]:
    """Pinned pip requirements of ``model`` (see ``model_requirements`` module)."""
    modules: set[str] = set()
    for node in model.pipeline.nodes:
        source = sys.modules.get(getattr(node.func, "__module__", "") or "")
        if source is not None:
            modules |= module_imports(source)
    for spec in model.artifact_specs.values():
        class_path = dataset_type(spec)
        if class_path:
            source = sys.modules.get(class_path.rsplit(".", 1)[0])
            modules.add(class_path.split(".", 1)[0])
            backend = spec["config"].get("backend")  # e.g. pickle.PickleDataset(backend="joblib")
            if isinstance(backend, str):
                modules.add(backend.split(".", 1)[0])
            if source is not None:
                modules |= module_imports(source)
    state = model._ensure_state()
    for name in model.artifact_names:
        modules |= object_modules(state.base[name])
    if sample is not None:
        modules |= object_modules(sample)
    shipped_modules = {Path(path).stem if Path(path).is_file() else Path(path).name for path in shipped}
    return requirements(modules, exclude=shipped_modules)


def _drop_cloudpickle_notice(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith("Passing a Python object as `python_model`")


@contextmanager
def _quiet_mlflow() -> Iterator[None]:
    # Quiet: MLflow's "models from code" advice (a pipeline model is a pickled object by design), pandas 3 on MLflow's
    # input-example code, skops' scan of Airflow's deprecated aliases; and sys.path, which validating the input
    # example prepends the model's code folder (a temp dir) to.
    pyfunc_logger = logging.getLogger("mlflow.pyfunc")
    pyfunc_logger.addFilter(_drop_cloudpickle_notice)
    saved_path = list(sys.path)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Operation with range is deprecated")
            warnings.filterwarnings("ignore", category=FutureWarning, module=r"skops\.io\._utils")
            yield
    finally:
        pyfunc_logger.removeFilter(_drop_cloudpickle_notice)
        sys.path[:] = saved_path


@contextmanager
def _no_progress_bars() -> Iterator[None]:
    # MLflow draws a tqdm bar on stderr for each artifact it packs into the model.
    quiet = PublishedEnvironment()
    quiet.set({_PROGRESS_BAR: "false"})
    try:
        yield
    finally:
        quiet.restore()
