"""Data lineage: what a run read, as MLflow dataset inputs, and which data its metrics were computed on; described
from the object a node loaded, or from file metadata, never by reading data."""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from kedro_mlflow_starter.config.redaction import DEFAULT_SECRET_PATTERNS, REDACTED, is_secret, redact_uri
from kedro_mlflow_starter.kedro_names import is_parameter
from kedro_mlflow_starter.tracking.failures import retry_lost_insert_race

if TYPE_CHECKING:  # pragma: no cover
    from kedro.pipeline import Pipeline
    from mlflow import MlflowClient
    from mlflow.entities import LoggedModel, Metric

CONTEXT_TAG = "mlflow.data.context"  # the input tag the MLflow UI shows as the dataset's context
TRAINING, EVALUATION, INPUT = "training", "evaluation", "input"
_PATH_KEYS = ("filepath", "path", "uri", "url", "table_name", "table", "sql", "query")
METRIC_TYPES = ("MlflowMetricDataset", "MlflowMetricHistoryDataset", "MlflowMetricsHistoryDataset")
_MODEL_TYPES = ("MlflowModelTrackingDataset",)
_SCHEMES = {"gcs": "gs", "https": "http", "abfs": "azure", "abfss": "azure", "az": "azure"}


@dataclass(frozen=True)
class DatasetRecord:
    """One dataset as the run used it: what ``log_inputs`` sends, without any mlflow object."""

    name: str
    digest: str
    source: str  # JSON {"uri": ...}, credentials removed
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


def pipeline_roles(pipeline: Pipeline, catalog_types: Mapping[str, str], models_logged: bool = False) -> PipelineRoles:
    """Free inputs are inputs (``training`` when the pipeline logs a model); the data inputs of a
    node writing an MLflow metric dataset are its evaluation data. ``catalog_types``: name -> ``type:``."""
    roles = PipelineRoles(free_inputs=sorted(n for n in pipeline.inputs() if not is_parameter(n)))
    roles.trains_model = models_logged or any(
        catalog_types.get(out, "").endswith(_MODEL_TYPES) for out in pipeline.all_outputs()
    )
    for node in pipeline.nodes:
        for output in node.outputs:
            if catalog_types.get(output, "").endswith(METRIC_TYPES):
                roles.evaluation_inputs[output] = [n for n in node.inputs if not is_parameter(n)]
    return roles


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


def source_type_of(location: str | None) -> str:
    if not location:
        return "kedro"
    scheme = urlsplit(location).scheme.lower()
    if not scheme or scheme == "file" or len(scheme) == 1:  # "C:" on Windows is a drive, not a scheme
        return "local"
    return _SCHEMES.get(scheme, scheme)


def file_metadata_digest(path: Path | str) -> str:
    """A digest from the path, size and modification time: one ``stat``, whatever the size (a folder: its entry)."""
    resolved = Path(path).resolve()
    info = os.stat(resolved)
    return hashlib.sha256(f"{resolved}|{info.st_size}|{info.st_mtime_ns}".encode()).hexdigest()[:8]


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
    """The record of dataset ``name`` as loaded (``data``; None when it is not in memory): a
    DataFrame or array gets MLflow's own digest, schema and row count, anything else a
    file-metadata digest."""
    location = location_of(config)
    if location and load_version:  # where Kedro keeps a version: <filepath>/<version>/<file name>
        location = location.rstrip("/")
        location = f"{location}/{load_version}/{location.rsplit('/', 1)[-1]}"
    source = safe_source(location, secret_patterns) if location else f"kedro catalog entry '{name}'"
    source_type = source_type_of(location)
    table = _tabular(data)
    if table is not None:
        return DatasetRecord(name, table[0], json.dumps({"uri": source}), source_type, context, table[1], table[2],
                             load_version)
    local = None
    if location and source_type == "local":
        local = Path(location.removeprefix("file://"))
        if not local.is_absolute() and project_path is not None:
            local = Path(project_path) / local
    if local is not None and local.exists():
        digest = file_metadata_digest(local)
    else:  # a remote or virtual source: identified by where it is and which version
        digest = hashlib.sha256(f"{source}|{load_version}|{type(data).__name__}".encode()).hexdigest()[:8]
    return DatasetRecord(name, digest, json.dumps({"uri": source}), source_type, context, None, None, load_version)


def _tabular(data: Any) -> tuple[str, str, str] | None:
    """(digest, schema, profile) of a pandas DataFrame/Series or a numpy array, else None."""
    kind = type(data).__module__.split(".", 1)[0]
    if kind not in ("pandas", "numpy"):
        return None
    import mlflow.data
    from mlflow.data.code_dataset_source import CodeDatasetSource

    source = CodeDatasetSource(tags={})  # a string source would make MLflow guess its type and warn
    try:
        with warnings.catch_warnings():
            # MLflow's integer-column hint is advice for model signatures, and pandas' deprecation
            # notices about MLflow's hashing code are not the user's to fix.
            warnings.simplefilter("ignore")
            if kind == "pandas":
                frame = data.to_frame() if type(data).__name__ == "Series" else data
                if type(frame).__name__ != "DataFrame":
                    return None
                dataset = mlflow.data.from_pandas(frame, source=source)
            elif type(data).__name__ == "ndarray":
                dataset = mlflow.data.from_numpy(data, source=source)
            else:
                return None
            described = dataset.to_dict()
    except Exception:  # an exotic dtype MLflow cannot describe: fall back to file metadata
        return None
    return described["digest"], described.get("schema"), described.get("profile")


def log_dataset_inputs(client: MlflowClient, run_id: str, records: Iterable[DatasetRecord]) -> None:
    """Every dataset input of the run in one ``log_inputs`` call; a call that loses the store's
    insert race to another task logging the same input is made again."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    inputs = []
    for record in records:
        tags = [InputTag(CONTEXT_TAG, record.context)]
        if record.load_version:
            tags.append(InputTag("kedro.load_version", record.load_version))
        inputs.append(DatasetInput(Dataset(record.name, record.digest, record.source_type, record.source,
                                           record.schema, record.profile), tags))
    if inputs:
        retry_lost_insert_race(lambda: client.log_inputs(run_id, datasets=inputs))


def metric_links(
    metric_keys: Mapping[str, list[str]], roles: PipelineRoles, records: Mapping[str, DatasetRecord]
) -> dict[str, list[DatasetRecord]]:
    """Metric key -> the tabular datasets it was computed on (``metric_keys``: metric dataset -> its keys)."""
    links: dict[str, list[DatasetRecord]] = {}
    for metric_dataset, keys in metric_keys.items():
        evaluated = [records[name] for name in roles.evaluation_inputs.get(metric_dataset, [])
                     if name in records and records[name].schema is not None]
        if evaluated:
            links.update(dict.fromkeys(keys, evaluated))
    return links


def metric_link_points(
    client: MlflowClient, run_id: str, links: Mapping[str, list[DatasetRecord]], models: Iterable[LoggedModel]
) -> list[Metric]:
    """Each linked metric's latest point again, for each of the run's logged models, with the data it
    was computed on (the first of them): same key, value, step and timestamp, so MLflow keeps one
    point in the run's history. A model that already holds the point (logged after the metric:
    MLflow copied it) keeps MLflow's copy, unlinked."""
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
        for model in models:
            held = {(m.key, m.step, m.timestamp) for m in (getattr(model, "metrics", None) or [])}
            if (key, last.step, last.timestamp) not in held:
                points.append(Metric(key, last.value, last.timestamp, last.step, model_id=model.model_id,
                                     dataset_name=datasets[0].name, dataset_digest=datasets[0].digest))
    return points
