"""Data lineage: what a run read, as MLflow dataset inputs, and which data its metrics were computed on.

Pure functions over Kedro's pipeline, its catalog configuration and the objects nodes
already loaded; ``mlflow`` is imported only by the functions that build or log MLflow
entities. Nothing here reads data: a DataFrame's digest, schema and row count come from the
object a node loaded, anything else gets a digest from file metadata (path, size, mtime),
so the cost does not grow with the size of the data.

What the MLflow UI shows, and why it is built this way:

- the runs list's *Datasets* column and the run page's *Datasets* box are the run's dataset
  inputs (``MlflowClient.log_inputs``), each tagged ``mlflow.data.context``;
- a logged model's *Datasets used* and the dataset link of each of its metrics come from the
  model's metrics that carry ``dataset_name`` and ``dataset_digest`` (``Metric`` with
  ``model_id``); the link opens the run's dataset input of the same name and digest.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from kedro_mlflow_starter.config.redaction import DEFAULT_SECRET_PATTERNS, REDACTED, is_secret, redact_uri

CONTEXT_TAG = "mlflow.data.context"  # the input tag the MLflow UI shows as the dataset's context
TRAINING, EVALUATION, INPUT = "training", "evaluation", "input"
_PATH_KEYS = ("filepath", "path", "uri", "url", "table_name", "table", "sql", "query")
_METRIC_TYPES = ("MlflowMetricDataset", "MlflowMetricHistoryDataset", "MlflowMetricsHistoryDataset")
_MODEL_TYPES = ("MlflowModelTrackingDataset",)


@dataclass(frozen=True)
class DatasetRecord:
    """One dataset as the run used it: what ``log_inputs`` sends, without any mlflow object."""

    name: str
    digest: str
    source: str  # the file path or URI, credentials removed
    source_type: str  # "local", "s3", "gs", "http", ... or "kedro" when there is no file
    context: str
    schema: str | None = None  # MLflow's ColSpec JSON, for tables
    profile: str | None = None  # {"num_rows": ..., "num_elements": ...}, for tables
    load_version: str | None = None


@dataclass
class PipelineRoles:
    """How a pipeline uses each dataset: read from outside, evaluated on, producing metrics."""

    free_inputs: list[str] = field(default_factory=list)
    evaluation_inputs: dict[str, list[str]] = field(default_factory=dict)  # metric dataset -> data it was computed on
    trains_model: bool = False

    def context_of(self, name: str) -> str | None:
        """The context a dataset is logged with, or None when the run does not log it as an input."""
        if any(name in inputs for inputs in self.evaluation_inputs.values()):
            return EVALUATION
        if name in self.free_inputs:
            return TRAINING if self.trains_model else INPUT
        return None


def pipeline_roles(pipeline: Any, catalog_types: Mapping[str, str], models_logged: bool = False) -> PipelineRoles:
    """Which datasets a run logs as inputs, and in which context.

    ``catalog_types`` maps dataset names to their ``type:``. Free inputs (read from outside
    the pipeline, parameters excluded) are inputs; the non-parameter inputs of a node that
    writes an MLflow metric dataset are its evaluation data (candidates; only tabular data
    is linked). A pipeline that logs a model (``models_logged`` or an MLflow model dataset
    output) trains: its free inputs get the context ``training``.
    """
    def is_param(name: str) -> bool:
        return name == "parameters" or name.startswith("params:")

    roles = PipelineRoles(free_inputs=sorted(n for n in pipeline.inputs() if not is_param(n)))
    roles.trains_model = models_logged or any(
        catalog_types.get(out, "").endswith(_MODEL_TYPES) for out in pipeline.all_outputs()
    )
    for node in pipeline.nodes:
        for output in node.outputs:
            if catalog_types.get(output, "").endswith(_METRIC_TYPES):
                roles.evaluation_inputs[output] = [n for n in node.inputs if not is_param(n)]
    return roles


# -- describing one dataset -------------------------------------------------------------------


def safe_source(location: str, secret_patterns: Iterable[str]) -> str:
    """A file path or URI fit to record: no ``user:password@``, no secret-looking query values."""
    text = redact_uri(str(location))
    parts = urlsplit(text)
    if not parts.query:
        return text
    query = [(k, REDACTED if is_secret(k, secret_patterns) else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    return urlunsplit(parts._replace(query=urlencode(query, safe="*")))


def location_of(config: Mapping[str, Any] | None) -> str | None:
    """The file path or URI a catalog entry reads (a wrapped ``dataset:`` entry's, if it has none)."""
    if not config:
        return None
    for key in _PATH_KEYS:
        value = config.get(key)
        if isinstance(value, str) and value:
            return value
    inner = config.get("dataset")
    return location_of(inner) if isinstance(inner, Mapping) else None


def versioned_path(location: str, version: str | None) -> str:
    """Where Kedro keeps a version of a versioned dataset: ``<filepath>/<version>/<file name>``."""
    if not version:
        return location
    return f"{location.rstrip('/')}/{version}/{location.rstrip('/').rsplit('/', 1)[-1]}"


def source_type_of(location: str | None) -> str:
    if not location:
        return "kedro"
    scheme = urlsplit(location).scheme.lower()
    if not scheme or scheme == "file" or len(scheme) == 1:  # "C:" on Windows is a drive, not a scheme
        return "local"
    return {"gcs": "gs", "https": "http", "abfs": "azure", "abfss": "azure", "az": "azure"}.get(scheme, scheme)


def resolve_local(location: str, project_path: Path | None) -> Path | None:
    """The local file behind ``location`` (relative paths resolve against the project), or None."""
    if source_type_of(location) != "local":
        return None
    path = Path(location[len("file://"):] if location.startswith("file://") else location)
    if not path.is_absolute() and project_path is not None:
        path = Path(project_path) / path
    return path


def file_metadata_digest(path: Path | str) -> str:
    """A digest from the file's path, size and modification time: one ``stat``, whatever the size.

    A folder (partitioned or versioned data) is described by the folder's own entry.
    """
    resolved = Path(path).resolve()
    info = os.stat(resolved)
    text = f"{resolved}|{info.st_size}|{info.st_mtime_ns}"
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def _text_digest(*parts: Any) -> str:
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:8]


def describe_dataset(
    name: str,
    data: Any,
    config: Mapping[str, Any] | None,
    context: str,
    *,
    load_version: str | None = None,
    project_path: Path | None = None,
    secret_patterns: Iterable[str] = DEFAULT_SECRET_PATTERNS,
) -> DatasetRecord:
    """The record of dataset ``name`` as loaded (``data``; None when it is not in memory).

    A pandas DataFrame (or numpy array) gets MLflow's own digest, schema and row count,
    computed from the object in memory; anything else a file-metadata digest.
    """
    location = location_of(config)
    if location and load_version:
        location = versioned_path(location, load_version)
    source = safe_source(location, secret_patterns) if location else f"kedro catalog entry '{name}'"
    source_type = source_type_of(location)
    table = _tabular(data)
    if table is not None:
        digest, schema, profile = table
        return DatasetRecord(name, digest, json.dumps({"uri": source}), source_type, context, schema, profile,
                             load_version)
    local = resolve_local(location, project_path) if location else None
    if local is not None and local.exists():
        digest = file_metadata_digest(local)
    else:  # a remote or virtual source: identified by where it is and which version
        digest = _text_digest(source, load_version, type(data).__name__)
    return DatasetRecord(name, digest, json.dumps({"uri": source}), source_type, context, None, None, load_version)


def _tabular(data: Any) -> tuple[str, str, str] | None:
    """(digest, schema, profile) of a pandas DataFrame/Series or a numpy array, else None."""
    kind = type(data).__module__.split(".", 1)[0]
    if kind not in ("pandas", "numpy"):
        return None
    import warnings

    import mlflow.data

    try:
        with warnings.catch_warnings():
            # MLflow's hint about integer columns is advice for model signatures, not for inputs,
            # and pandas' deprecation notices about MLflow's hashing code are not the user's to fix.
            warnings.simplefilter("ignore")
            if kind == "pandas":
                frame = data.to_frame() if type(data).__name__ == "Series" else data
                if type(frame).__name__ != "DataFrame":
                    return None
                dataset = mlflow.data.from_pandas(frame, source=_MEMORY_SOURCE())
            elif type(data).__name__ == "ndarray":
                dataset = mlflow.data.from_numpy(data, source=_MEMORY_SOURCE())
            else:
                return None
            described = dataset.to_dict()
    except Exception:  # an exotic dtype MLflow cannot describe: fall back to file metadata
        return None
    return described["digest"], described.get("schema"), described.get("profile")


def _MEMORY_SOURCE() -> Any:
    # An explicit source: a string would make MLflow guess its type and warn about ambiguity.
    from mlflow.data.code_dataset_source import CodeDatasetSource

    return CodeDatasetSource(tags={})


# -- logging ----------------------------------------------------------------------------------


def dataset_inputs(records: Iterable[DatasetRecord]) -> list[Any]:
    """``mlflow.entities.DatasetInput`` objects for ``log_inputs``."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    inputs = []
    for record in records:
        tags = [InputTag(CONTEXT_TAG, record.context)]
        if record.load_version:
            tags.append(InputTag("kedro.load_version", record.load_version))
        dataset = Dataset(record.name, record.digest, record.source_type, record.source, record.schema,
                          record.profile)
        inputs.append(DatasetInput(dataset, tags))
    return inputs


def log_dataset_inputs(client: Any, run_id: str, records: Iterable[DatasetRecord]) -> None:
    """Every dataset input of the run in one ``log_inputs`` call (none when there is nothing).

    Orchestrated tasks running at once log the same inputs into one run: a call that loses
    the store's insert race to another task is made again, and then reuses that task's rows.
    """
    from kedro_mlflow_starter.tracking.failures import retry_lost_insert_race

    inputs = dataset_inputs(records)
    if inputs:
        retry_lost_insert_race(lambda: client.log_inputs(run_id, datasets=inputs))


def metric_links(
    metric_keys: Mapping[str, list[str]], roles: PipelineRoles, records: Mapping[str, DatasetRecord]
) -> dict[str, list[DatasetRecord]]:
    """For each metric key, the tabular datasets it was computed on (those the run logged).

    ``metric_keys`` maps a metric dataset name to the metric keys it logged.
    """
    links: dict[str, list[DatasetRecord]] = {}
    for metric_dataset, keys in metric_keys.items():
        evaluated = [records[name] for name in roles.evaluation_inputs.get(metric_dataset, [])
                     if name in records and records[name].schema is not None]
        for key in keys:
            if evaluated:
                links[key] = evaluated
    return links


def metric_link_points(
    client: Any, run_id: str, links: Mapping[str, list[DatasetRecord]], models: Iterable[Any]
) -> list[Any]:
    """Each metric's latest point, again, for each of the run's logged models, with the data it was computed on.

    ``models`` are the run's ``LoggedModel`` objects; the result (``Metric`` objects) goes
    out with ``log_batch``. Each linked point is the run's own point (same key, value, step
    and timestamp) with ``model_id``, ``dataset_name`` and ``dataset_digest``: MLflow keeps
    one copy in the run's history (a point is unique per key, value, step and timestamp) and
    adds the model's metric. Any other timestamp would add a second point to the run's
    history, so:

    - a metric computed on several tables is linked to the first of them (the node's first
      input); the run's dataset inputs list them all;
    - a model logged after the metric (the pipeline model, logged at the end of the run)
      already holds that point, without a dataset: MLflow copies a run's metrics into each
      model it logs, and a model metric is unique per key, step and timestamp. It keeps
      MLflow's copy, unlinked.
    """
    from mlflow.entities import Metric

    models = list(models)
    if not links or not models:
        return []
    points = []
    for key, datasets in sorted(links.items()):
        history = client.get_metric_history(run_id, key)
        if not history or not datasets:
            continue
        last = max(history, key=lambda m: (m.step, m.timestamp))
        record = datasets[0]
        for model in models:
            held = {(m.key, m.step, m.timestamp) for m in (getattr(model, "metrics", None) or [])}
            if (key, last.step, last.timestamp) in held:
                continue
            points.append(Metric(key, last.value, last.timestamp, last.step, model_id=model.model_id,
                                 dataset_name=record.name, dataset_digest=record.digest))
    return points


def run_models(client: Any, run_id: str, experiment_id: str) -> list[Any]:
    """The models logged by the run (MLflow 3 LoggedModels whose source run it is), with their metrics."""
    return list(client.search_logged_models(experiment_ids=[experiment_id],
                                            filter_string=f"source_run_id = '{run_id}'"))
