"""What one tracked pipeline run records about what it was made from, collected as it runs.

The run's owner (the hook today, the run object of ``tracking/run.py`` later) creates one
``LineageRecorder`` when the run opens, forwards Kedro's node and dataset events to it, and
calls ``finish`` once, after the pipeline (and its pipeline model) ran. ``finish`` writes
three times whatever the pipeline's size: ``log_inputs`` (datasets), one ``log_batch``
(node timings, version tags and the metrics' dataset links) and one ``log_artifacts``
(``kedro/``); linking metrics first reads the run, its logged models and each linked
metric's history. ``tracking.lineage`` in ``mlflow.yml`` switches each part.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kedro_mlflow_starter.config.mlflow_config import LineageConfig
from kedro_mlflow_starter.tracking.dataset_versions import load_version, version_tags
from kedro_mlflow_starter.tracking.lineage import (
    EVALUATION,
    DatasetRecord,
    describe_dataset,
    metric_link_points,
    log_dataset_inputs,
    metric_links,
    pipeline_roles,
    run_models,
)
from kedro_mlflow_starter.tracking.node_timings import PIPELINE_KEY, NodeTimer
from kedro_mlflow_starter.tracking.run_config import (
    catalog_entries,
    catalog_types,
    kedro_folder_files,
    log_kedro_folder,
)


class LineageRecorder:
    """Collects dataset records and node timings of one run; logs them at ``finish``."""

    def __init__(
        self,
        switches: LineageConfig,
        pipeline: Any,
        catalog: Any,
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
        self.types = catalog_types(catalog, pipeline.datasets())
        self.roles = pipeline_roles(pipeline, self.types, models_logged=logs_pipeline_model)
        self.entries = catalog_entries(catalog, pipeline.datasets()) if (switches.datasets or switches.config) else {}
        self.timer = NodeTimer() if switches.node_timings else None
        self.records: dict[str, DatasetRecord] = {}
        self._lock = threading.Lock()
        # Events from another process (ParallelRunner's workers) are not ours to record: the
        # owner's ``finish`` describes unseen inputs from file metadata instead.
        self._pid = os.getpid()
        # Replaying an outage: the ``kedro/`` files as the run wrote them, not as the project is now.
        self.kept_kedro_files: dict[str, str] | None = None

    # -- events ------------------------------------------------------------------------------

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
        if self.timer is not None and os.getpid() == self._pid:
            self.timer.start(node_name)

    def node_finished(self, node_name: str) -> None:
        if self.timer is not None and os.getpid() == self._pid:
            self.timer.stop(node_name)

    def pipeline_finished(self) -> None:
        if self.timer is not None:
            self.timer.stop_pipeline()

    # -- the end of the run ------------------------------------------------------------------

    def finish(self, client: Any, run_id: str, experiment_id: str, *, one_task_of_many: bool = False) -> None:
        """Log everything collected into ``run_id`` (each part as its switch says).

        ``one_task_of_many``: this process ran a slice of a pipeline run that an orchestrator
        split into tasks (``kedro mlflow run open``); the run's ``kedro/`` folder and its
        ``time.pipeline`` describe the whole pipeline and are written by the open/close steps.
        """
        metrics: list[Any] = []
        tags: dict[str, str] = {}
        inputs_error: Exception | None = None
        if self.switches.datasets:
            for name in self.roles.free_inputs:  # inputs loaded in another process, or never
                if name not in self.records:
                    self.records[name] = self._describe(name, None, self.roles.context_of(name) or "input")
            try:
                log_dataset_inputs(client, run_id, self.records.values())
            except Exception as error:  # noqa: BLE001 - raised once the rest is logged
                inputs_error = error
            tags = version_tags(self.catalog, self.roles.free_inputs, self.pipeline.all_outputs())
            if self.roles.evaluation_inputs:
                links = metric_links(self._metric_keys(client, run_id), self.roles, self.records)
                if links:
                    metrics += metric_link_points(client, run_id, links, run_models(client, run_id, experiment_id))
        if self.timer is not None:
            metrics += [m for m in self.timer.metrics() if not (one_task_of_many and m.key == PIPELINE_KEY)]
        from mlflow.entities import RunTag

        tag_list = [RunTag(k, v) for k, v in sorted(tags.items())]
        # One log_batch in practice; MLflow's limits (1,000 metrics, 100 tags) split larger runs.
        while metrics or tag_list:
            client.log_batch(run_id, metrics=metrics[:1000], tags=tag_list[:100])
            metrics, tag_list = metrics[1000:], tag_list[100:]
        if not one_task_of_many:
            self.log_kedro_folder(client, run_id)
        if inputs_error is not None:  # the timings, tags and kedro/ folder are in: report what is not
            raise inputs_error

    # -- an outage: kept for `kedro mlflow run replay` (tracking/replay.py) ---------------------

    def replay_state(self, *, one_task_of_many: bool = False) -> dict[str, Any]:
        """What ``finish`` would have logged, as JSON, to log it later in a session of the project:
        the dataset records, the node timings (measured now), the ``kedro/`` files as they are now."""
        from dataclasses import asdict

        if self.switches.datasets:
            for name in self.roles.free_inputs:
                if name not in self.records:
                    self.records[name] = self._describe(name, None, self.roles.context_of(name) or "input")
        timings = [[m.key, m.value, m.step, m.timestamp] for m in self.timer.metrics()] if self.timer else []
        return {
            "kind": "lineage",
            "pipeline_names": sorted(self.run_params.get("pipeline_names") or ["__default__"]),
            "env": self.run_params.get("env"),
            "runtime_params": self.run_params.get("runtime_params") or {},
            "run_params": {k: v for k, v in self.run_params.items() if isinstance(v, (str, int, float, bool, list,
                                                                                     dict, type(None)))},
            "records": [asdict(record) for record in self.records.values()],
            "timings": timings,
            "kedro_files": self._kedro_files() if not one_task_of_many else {},
            "one_task_of_many": one_task_of_many,
        }

    @classmethod
    def from_replay(cls, state: Mapping[str, Any], switches: LineageConfig, pipeline: Any, catalog: Any, *,
                    project_path: Path | None = None, secret_patterns: list[str] | None = None) -> LineageRecorder:
        """A recorder whose ``finish`` logs what ``replay_state`` kept (in a new session of the project)."""
        from kedro_mlflow_starter.pipeline import PipelineML

        recorder = cls(switches, pipeline, catalog, state.get("run_params") or {}, project_path=project_path,
                       secret_patterns=secret_patterns, logs_pipeline_model=isinstance(pipeline, PipelineML))
        recorder.records = {record["name"]: DatasetRecord(**record) for record in state.get("records") or []}
        recorder.timer = _KeptTimings(state.get("timings") or []) if state.get("timings") else None
        recorder.kept_kedro_files = dict(state.get("kedro_files") or {})
        return recorder

    def log_kedro_folder(self, client: Any, run_id: str) -> None:
        """The run's ``kedro/`` folder: configuration and pipeline graph, as the switches say."""
        files = self._kedro_files()
        if files:
            log_kedro_folder(client, run_id, files)

    # -- internals ---------------------------------------------------------------------------

    def _describe(self, name: str, data: Any, context: str) -> DatasetRecord:
        return describe_dataset(
            name, data, self.entries.get(name), context,
            load_version=load_version(self.catalog, name),
            project_path=self.project_path, secret_patterns=self.secret_patterns,
        )

    def _metric_keys(self, client: Any, run_id: str) -> dict[str, list[str]]:
        """Metric dataset name -> the keys it logged in this run (read from the run once)."""
        logged = list(client.get_run(run_id).data.metrics)
        keys: dict[str, list[str]] = {}
        for name in self.roles.evaluation_inputs:
            dataset = self.catalog.get(name) if name in self.catalog else None
            owns = getattr(dataset, "_owns", None)  # our metric datasets: which keys are theirs
            if owns is not None:
                keys[name] = sorted(k for k in logged if owns(k))
        return keys

    def _kedro_files(self) -> dict[str, str]:
        if self.kept_kedro_files is not None:
            return dict(self.kept_kedro_files)
        parameters = catalog_run = None
        pipeline = svg = None
        if self.switches.config:
            try:
                # the dataset itself, not catalog.load: no "Loading data from parameters" line at the end
                parameters = self.catalog.get("parameters").load()
            except Exception:  # a catalog without the parameters entry (not built by Kedro's context)
                parameters = {}
            catalog_run = self.entries
        if self.switches.pipeline_graph:
            from kedro_mlflow_starter.tracking.pipeline_graph import pipeline_svg

            pipeline = self.pipeline
            names = "+".join(sorted(self.run_params.get("pipeline_names") or ["__default__"]))
            svg = pipeline_svg(self.pipeline, self.types, title=f"kedro pipeline: {names}")
        return kedro_folder_files(
            parameters=parameters, catalog=catalog_run,
            run_params=self.run_params if self.switches.config else None,
            pipeline=pipeline, svg=svg, secret_patterns=self.secret_patterns,
        )


class _KeptTimings:
    """Node timings measured during a run that could not log them, replayed as they were."""

    def __init__(self, points: list[list[Any]]) -> None:
        self._points = points

    def metrics(self) -> list[Any]:
        from mlflow.entities import Metric

        return [Metric(key, float(value), int(timestamp), int(step)) for key, value, step, timestamp in self._points]
