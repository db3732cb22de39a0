"""What one tracked run records about what it was made from, collected from Kedro's events and
logged at ``finish`` in three calls (``log_inputs``, ``log_batch``, ``log_artifacts``)."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kedro_mlflow_starter.config.mlflow_config import LineageConfig
from kedro_mlflow_starter.pipeline import PipelineML
from kedro_mlflow_starter.tracking.dataset_versions import load_version, version_tags
from kedro_mlflow_starter.tracking.lineage import (
    EVALUATION,
    DatasetRecord,
    describe_dataset,
    log_dataset_inputs,
    metric_link_points,
    metric_links,
    pipeline_roles,
)
from kedro_mlflow_starter.tracking.node_timings import PIPELINE_KEY, NodeTimer
from kedro_mlflow_starter.tracking.pipeline_graph import pipeline_svg
from kedro_mlflow_starter.tracking.run_config import catalog_entries, kedro_folder_files, log_kedro_folder

if TYPE_CHECKING:  # pragma: no cover
    from kedro.io import DataCatalog
    from kedro.pipeline import Pipeline
    from mlflow import MlflowClient
    from mlflow.entities import Metric


class LineageRecorder:
    """Collects dataset records and node timings of one run; logs them at ``finish``."""

    def __init__(
        self,
        switches: LineageConfig,
        pipeline: Pipeline,
        catalog: DataCatalog,
        run_params: Mapping[str, Any] | None = None,
        *,
        project_path: Path | None = None,
        secret_patterns: list[str] | None = None,
        logs_pipeline_model: bool = False,
    ) -> None:
        self.switches = switches
        self.pipeline = pipeline
        self.catalog = catalog
        self.run_params = dict(run_params or {})
        self.project_path = project_path
        self.secret_patterns = list(secret_patterns or [])
        self.entries = catalog_entries(catalog, pipeline.datasets())
        self.types = {name: str(entry.get("type", "")) for name, entry in self.entries.items()}
        self.roles = pipeline_roles(pipeline, self.types, models_logged=logs_pipeline_model)
        self.timer: NodeTimer | _KeptTimings | None = NodeTimer() if switches.node_timings else None
        self.records: dict[str, DatasetRecord] = {}
        self._lock = threading.Lock()
        # ParallelRunner's workers' events are not recorded: `finish` describes unseen inputs from file metadata.
        self._pid = os.getpid()
        self.kept_kedro_files: dict[str, str] | None = None  # a replay: the files as the run wrote them

    def dataset_loaded(self, name: str, data: Any) -> None:
        if not self.switches.datasets or os.getpid() != self._pid or name in self.records:
            return
        context = self.roles.context_of(name)
        if context is None:
            return
        record = self._describe(name, data, context)
        if context == EVALUATION and name not in self.roles.free_inputs and record.schema is None:
            return  # a model or other object a metrics node read: not evaluation data
        with self._lock:
            self.records.setdefault(name, record)

    def node_started(self, node_name: str) -> None:
        if isinstance(self.timer, NodeTimer) and os.getpid() == self._pid:
            self.timer.start(node_name)

    def node_finished(self, node_name: str) -> None:
        if isinstance(self.timer, NodeTimer) and os.getpid() == self._pid:
            self.timer.stop(node_name)

    def pipeline_finished(self) -> None:
        if isinstance(self.timer, NodeTimer):
            self.timer.stop_pipeline()

    def finish(self, client: MlflowClient, run_id: str, experiment_id: str, *, one_task_of_many: bool = False) -> None:
        """Log everything collected into ``run_id``, each part as its switch says; ``one_task_of_many`` leaves the
        ``kedro/`` folder and ``time.pipeline`` (the whole pipeline's) to ``kedro mlflow run open/close``."""
        metrics: list[Metric] = []
        tags: dict[str, str] = {}
        inputs_error: Exception | None = None
        if self.switches.datasets:
            self._describe_unseen_inputs()
            try:
                log_dataset_inputs(client, run_id, self.records.values())
            except Exception as error:  # noqa: BLE001 - raised once the rest is logged
                inputs_error = error
            tags = version_tags(self.catalog, self.roles.free_inputs, self.pipeline.all_outputs())
            if self.roles.evaluation_inputs:
                links = metric_links(self._metric_keys(client, run_id), self.roles, self.records)
                if links:
                    from mlflow.entities import LoggedModelStatus

                    # A model still PENDING is being logged by another task of a group run, and its
                    # Model.log copies the run's metrics itself: a link written now would collide.
                    models = [model for model in client.search_logged_models(
                        experiment_ids=[experiment_id], filter_string=f"source_run_id = '{run_id}'")
                        if model.status == LoggedModelStatus.READY]
                    metrics += metric_link_points(client, run_id, links, models)
        if self.timer is not None:
            metrics += [m for m in self.timer.metrics() if not (one_task_of_many and m.key == PIPELINE_KEY)]
        from mlflow.entities import RunTag

        if metrics or tags:
            client.log_batch(run_id, metrics=metrics, tags=[RunTag(k, v) for k, v in sorted(tags.items())])
        if not one_task_of_many:
            self.log_kedro_folder(client, run_id)
        if inputs_error is not None:
            raise inputs_error

    def replay_state(self, *, one_task_of_many: bool = False) -> dict[str, Any]:
        """What ``finish`` would have logged, as JSON, for ``kedro mlflow run replay`` (tracking/replay.py)."""
        self._describe_unseen_inputs()
        timings = [[m.key, m.value, m.step, m.timestamp] for m in self.timer.metrics()] if self.timer else []
        plain = (str, int, float, bool, list, dict, type(None))
        return {
            "kind": "lineage",
            "pipeline_names": sorted(self.run_params.get("pipeline_names") or ["__default__"]),
            "env": self.run_params.get("env"),
            "runtime_params": self.run_params.get("runtime_params") or {},
            "run_params": {k: v for k, v in self.run_params.items() if isinstance(v, plain)},
            "records": [asdict(record) for record in self.records.values()],
            "timings": timings,
            "kedro_files": self._kedro_files() if not one_task_of_many else {},
            "one_task_of_many": one_task_of_many,
        }

    @classmethod
    def from_replay(cls, state: Mapping[str, Any], switches: LineageConfig, pipeline: Pipeline, catalog: DataCatalog,
                    *, project_path: Path | None = None, secret_patterns: list[str] | None = None) -> LineageRecorder:
        """A recorder whose ``finish`` logs what ``replay_state`` kept (in a new session of the project)."""
        recorder = cls(switches, pipeline, catalog, state.get("run_params") or {}, project_path=project_path,
                       secret_patterns=secret_patterns, logs_pipeline_model=isinstance(pipeline, PipelineML))
        recorder.records = {record["name"]: DatasetRecord(**record) for record in state.get("records") or []}
        recorder.timer = _KeptTimings(state["timings"]) if state.get("timings") else None
        recorder.kept_kedro_files = dict(state.get("kedro_files") or {})
        return recorder

    def log_kedro_folder(self, client: MlflowClient, run_id: str) -> None:
        """The run's ``kedro/`` folder: configuration and pipeline graph, as the switches say."""
        log_kedro_folder(client, run_id, self._kedro_files())

    def _describe_unseen_inputs(self) -> None:
        """Inputs loaded in another process, or never: described from file metadata."""
        if self.switches.datasets:
            for name in self.roles.free_inputs:
                if name not in self.records:
                    self.records[name] = self._describe(name, None, self.roles.context_of(name) or "input")

    def _describe(self, name: str, data: Any, context: str) -> DatasetRecord:
        return describe_dataset(name, data, self.entries.get(name), context,
                                load_version=load_version(self.catalog, name),
                                project_path=self.project_path, secret_patterns=self.secret_patterns)

    def _metric_keys(self, client: MlflowClient, run_id: str) -> dict[str, list[str]]:
        """Metric dataset name -> the keys it logged in this run (the run is read once)."""
        logged = list(client.get_run(run_id).data.metrics)
        keys: dict[str, list[str]] = {}
        for name in self.roles.evaluation_inputs:
            owns = getattr(self.catalog.get(name) if name in self.catalog else None, "_owns", None)
            if owns is not None:  # our metric datasets say which keys are theirs
                keys[name] = sorted(k for k in logged if owns(k))
        return keys

    def _kedro_files(self) -> dict[str, str]:
        if self.kept_kedro_files is not None:
            return dict(self.kept_kedro_files)
        parameters = catalog = svg = None
        if self.switches.config:
            try:  # the dataset itself, not catalog.load: no "Loading data from parameters" line
                parameters = self.catalog.get("parameters").load()
            except Exception:  # a catalog not built by Kedro's context has no parameters entry
                parameters = {}
            catalog = self.entries
        if self.switches.pipeline_graph:
            names = "+".join(sorted(self.run_params.get("pipeline_names") or ["__default__"]))
            svg = pipeline_svg(self.pipeline, self.types, title=f"kedro pipeline: {names}")
        return kedro_folder_files(
            parameters=parameters, catalog=catalog, run_params=self.run_params if self.switches.config else None,
            pipeline=self.pipeline if self.switches.pipeline_graph else None, svg=svg,
            secret_patterns=self.secret_patterns,
        )


class _KeptTimings:
    """Node timings measured during a run that could not log them, replayed as they were."""

    def __init__(self, points: list[list[Any]]) -> None:
        self._points = points

    def metrics(self) -> list[Metric]:
        from mlflow.entities import Metric

        return [Metric(key, float(value), int(timestamp), int(step)) for key, value, step, timestamp in self._points]
