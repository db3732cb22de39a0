"""A run's own copies of its pipeline model's artifacts, made when a node saves them (in any worker; the plan
travels in ``KEDRO_MLFLOW_MODEL_ARTIFACTS``), so the model holds what *its* run produced::

    <run artifacts>/kedro/model_artifacts/<dataset>/spec.json   # how to read it back
    <run artifacts>/kedro/model_artifacts/<dataset>/data/...    # e.g. classifier.pkl
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kedro.io import DataCatalog

from kedro_mlflow_starter.errors import PipelineModelArtifactMissingError
from kedro_mlflow_starter.models.artifacts import artifact_config, artifact_dataset, safe_dirname, save_with_config
from kedro_mlflow_starter.tracking.current import active_run_id, current_client, tracking_disabled
from kedro_mlflow_starter.tracking.failures import call_with_retry, outage_policy

if TYPE_CHECKING:
    from kedro.pipeline import Pipeline

    from kedro_mlflow_starter.pipeline import PipelineML

ENV_PLAN = "KEDRO_MLFLOW_MODEL_ARTIFACTS"
RUN_FOLDER = "kedro/model_artifacts"
SPEC_FILE = "spec.json"
DATA_FOLDER = "data"


def snapshot_plan(pipeline: Pipeline, catalog: DataCatalog,
                  pipeline_models: Iterable[PipelineML]) -> dict[str, dict[str, Any] | None]:
    """The artifacts ``pipeline`` produces for any of ``pipeline_models``, each with its config (None: cloudpickle)."""
    needed = {name for model in pipeline_models for name in model.artifact_names}
    produced = pipeline.all_outputs()
    return {name: _portable(artifact_config(catalog.get(name))) for name in sorted(needed & produced)}


def plan_environment(plan: Mapping[str, Any]) -> dict[str, str | None]:
    """The environment that makes ``snapshot_saved`` copy ``plan``'s artifacts (None unsets)."""
    return {ENV_PLAN: json.dumps(plan) if plan else None}


def snapshot_saved(dataset_name: str, data: Any) -> None:
    """Copy ``data`` into the current run if ``dataset_name`` is an artifact of its pipeline model."""
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
        with outage_policy(f"the pipeline model's copy of '{dataset_name}'", str(folder),
                           replay={"kind": "artifact", "artifact_path": artifact_path}):
            call_with_retry(lambda: client.log_artifacts(run_id, str(folder), artifact_path))


def catalog_of_run_copies(pipeline_model: PipelineML, catalog: DataCatalog, run_id: str, folder: Path,
                          required: Iterable[str]) -> DataCatalog:
    """A catalog reading every artifact the run copied from that copy (downloaded under ``folder``), the rest
    from ``catalog``; raises when an artifact of ``required`` (produced by the run's nodes) has no copy."""
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
                    "Give every task the hook and the group run's MLFLOW_RUN_ID, and run the pipeline again.")
            datasets[name] = catalog.get(name)
            continue
        local = Path(call_with_retry(lambda safe=safe: client.download_artifacts(run_id, f"{RUN_FOLDER}/{safe}",
                                                                                 str(folder))))
        spec = json.loads((local / SPEC_FILE).read_text(encoding="utf-8"))
        datasets[name] = artifact_dataset(name, spec, local / DATA_FOLDER)
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
