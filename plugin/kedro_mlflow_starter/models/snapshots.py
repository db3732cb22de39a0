"""A run's own copies of its pipeline model's artifacts.

A pipeline model must hold what *its* run produced, not whatever ``data/06_models`` holds
when it is logged: two runs started at once, two orchestrated group runs, parallel sweep
trials, or a ``kedro mlflow run close`` on another machine than the tasks would otherwise pack
another run's (or no) files. So each artifact of the inference pipeline is copied into the run
the moment a node saves it (Kedro's ``after_dataset_saved``, in whichever thread, worker
process or orchestrator task runs the node), from the very object the node returned, with the
same dataset type; the model is then built from the run's copies::

    <run artifacts>/kedro/model_artifacts/<dataset>/spec.json   # how to read it back
    <run artifacts>/kedro/model_artifacts/<dataset>/data/...    # e.g. classifier.pkl

What to copy travels in an environment variable (``KEDRO_MLFLOW_MODEL_ARTIFACTS``: dataset name
-> its storable config), so worker processes, spawned or forked, need no state of the parent.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from kedro_mlflow_starter.errors import PipelineModelArtifactMissingError
from kedro_mlflow_starter.models.artifacts import artifact_config, load_artifact, safe_dirname, save_with_config
from kedro_mlflow_starter.tracking.current import active_run_id, current_client, tracking_disabled
from kedro_mlflow_starter.tracking.failures import call_with_retry, outage_policy

ENV_PLAN = "KEDRO_MLFLOW_MODEL_ARTIFACTS"
RUN_FOLDER = "kedro/model_artifacts"
SPEC_FILE = "spec.json"
DATA_FOLDER = "data"


def snapshot_plan(pipeline: Any, catalog: Any, pipeline_models: Iterable[Any]) -> dict[str, dict[str, Any] | None]:
    """The artifacts that ``pipeline`` produces for any of ``pipeline_models`` (``PipelineML``),
    each with the config to store it by (None: cloudpickle)."""
    needed = {name for model in pipeline_models for name in model.artifact_names}
    produced = pipeline.all_outputs()
    return {name: _portable(artifact_config(catalog.get(name))) for name in sorted(needed & produced)}


def plan_environment(plan: Mapping[str, Any]) -> dict[str, str | None]:
    """The environment that makes ``snapshot_saved`` copy ``plan``'s artifacts (None unsets)."""
    return {ENV_PLAN: json.dumps(plan) if plan else None}


def snapshot_saved(dataset_name: str, data: Any) -> None:
    """Copy ``data`` into the current run if ``dataset_name`` is an artifact of its pipeline model.

    An outage is recorded like any other item that could not be logged (the run then ends
    FAILED and names it) and the copy is kept for ``kedro mlflow run replay``; the model,
    which needs it, is not logged until then either.
    """
    raw = os.environ.get(ENV_PLAN)
    run_id = active_run_id()
    if not raw or not run_id or tracking_disabled():
        return
    plan = json.loads(raw)
    if dataset_name not in plan:
        return
    with tempfile.TemporaryDirectory(prefix="kedro-mlflow-snapshot-") as tmp:
        folder = Path(tmp) / safe_dirname(dataset_name)
        spec = save_with_config(dataset_name, plan[dataset_name], data, folder / DATA_FOLDER)
        (folder / SPEC_FILE).write_text(json.dumps(spec), encoding="utf-8")
        client = current_client()
        artifact_path = f"{RUN_FOLDER}/{folder.name}"
        # lost to an outage: kept for `kedro mlflow run replay`, which logs it before it rebuilds the model
        with outage_policy(f"the pipeline model's copy of '{dataset_name}'", str(folder),
                           replay={"kind": "artifact", "artifact_path": artifact_path}):
            call_with_retry(lambda: client.log_artifacts(run_id, str(folder), artifact_path))


def catalog_of_run_copies(pipeline_model: Any, catalog: Any, run_id: str, folder: Path,
                          required: Iterable[str]) -> Any:
    """A catalog for building ``pipeline_model`` in which every artifact the run copied reads
    that copy (downloaded under ``folder``); params, the input and artifacts the run did not
    produce (training read them) come from ``catalog``.

    Raises when an artifact of ``required`` (produced by the run's nodes) has no copy.
    """
    from kedro.io import AbstractDataset, DataCatalog, MemoryDataset

    required = set(required)
    client = current_client()
    copied = {Path(item.path).name for item in call_with_retry(lambda: client.list_artifacts(run_id, RUN_FOLDER))}
    datasets: dict[str, Any] = {}
    for name in pipeline_model.artifact_names:
        safe = safe_dirname(name)
        if safe not in copied:
            if name in required:
                raise PipelineModelArtifactMissingError(
                    f"The pipeline model of run {run_id} needs '{name}', which a node of the run produced, but "
                    f"the run holds no copy of it ({RUN_FOLDER}/{safe} is missing): the task that saved it ran "
                    "without the kedro-mlflow-starter hook, with another MLFLOW_RUN_ID, or its upload failed. "
                    "Give every task the hook and the group run's MLFLOW_RUN_ID, and run the pipeline again."
                )
            datasets[name] = catalog.get(name)
            continue
        local = Path(call_with_retry(lambda safe=safe: client.download_artifacts(run_id, f"{RUN_FOLDER}/{safe}",
                                                                                 str(folder))))
        spec = json.loads((local / SPEC_FILE).read_text(encoding="utf-8"))
        if spec["kind"] == "dataset":
            config = dict(spec["config"])
            config["filepath"] = (local / DATA_FOLDER / config["filepath"]).as_posix()
            datasets[name] = AbstractDataset.from_config(name, config)
        else:
            datasets[name] = MemoryDataset(load_artifact(name, spec, local / DATA_FOLDER), copy_mode="assign")
    for name in [*pipeline_model.param_names, pipeline_model.input_name]:
        datasets[name] = catalog.get(name)
    return DataCatalog({name: dataset for name, dataset in datasets.items() if dataset is not None})


def _portable(config: dict[str, Any] | None) -> dict[str, Any] | None:
    """``config`` if it survives JSON (it travels in the environment), else None (cloudpickle)."""
    if config is None:
        return None
    try:
        return json.loads(json.dumps(config))
    except (TypeError, ValueError):
        return None
