"""What an outage kept from a run in the project's pending folder, and ``kedro mlflow run replay``,
which logs it into the run in the order it was recorded and ends the run with the status it earned."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kedro_mlflow_starter.pipeline import PipelineML
from kedro_mlflow_starter.tracking.current import ENV_PENDING_DIR
from kedro_mlflow_starter.tracking.orchestrated import record_task_outcome
from kedro_mlflow_starter.tracking.pending_models import fail_pending_models
from kedro_mlflow_starter.tracking.registration_prints import mlflow_prints_logged

if TYPE_CHECKING:  # pragma: no cover
    from contextlib import AbstractContextManager

    from kedro.framework.context import KedroContext
    from kedro.pipeline import Pipeline
    from mlflow import MlflowClient
    from mlflow.entities import Run

    from kedro_mlflow_starter.config.mlflow_config import MlflowConfig

    ProjectSession = tuple[KedroContext, MlflowConfig, dict[str, Pipeline]]

logger = logging.getLogger("kedro_mlflow_starter")

# <project>/.kedro-mlflow/pending/<run_id>/: items.jsonl (one line per item: what it is, how to log
# it), files/<item id>/ (the local copy of an artifact or model folder), run.json (the status earned).
PENDING_ROOT = Path(".kedro-mlflow") / "pending"
ITEMS = "items.jsonl"
RUN_FILE = "run.json"
FILES = "files"

_kept_sources: set[str] = set()  # local paths this process copied into a pending folder


def is_kept(local_path: str) -> bool:
    """True when ``local_path`` was copied into the run's pending folder (its temp original may go)."""
    return os.path.abspath(local_path) in _kept_sources


def pending_dir(project_path: Path | str | None, run_id: str) -> Path:
    """The pending folder of ``run_id`` in the project (the current folder when unknown)."""
    return Path(project_path or Path.cwd()) / PENDING_ROOT / run_id


def replay_command(run_id: str, env: str | None) -> str:
    """What to type once the server is back: with the run's ``--env``, whose mlflow.yml names its store."""
    return f"kedro mlflow run replay --run-id {run_id}" + (f" --env {env}" if env and env != "local" else "")


def pending_folder_hint(run_id: str) -> str:
    """The pending folder as the failure report names it."""
    folder = os.environ.get(ENV_PENDING_DIR)
    return folder if folder else str(PENDING_ROOT / run_id)


def keep_for_replay(what: str, local_path: str | None, replay: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """Keep one item (and a copy of ``local_path``) in the pending folder: (its item id, the
    copy's path), or None for the id when this process has no run published."""
    folder = os.environ.get(ENV_PENDING_DIR)
    if not folder:
        return None, None
    item_id = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"  # ordered as recorded, unique across processes
    item: dict[str, Any] = {"id": item_id, "what": what, "replay": dict(replay)}
    root = Path(folder)
    try:
        if local_path and os.path.exists(local_path):
            target = root / FILES / item_id / Path(local_path).name
            target.parent.mkdir(parents=True, exist_ok=True)
            if os.path.isdir(local_path):
                shutil.copytree(local_path, target)
            else:
                shutil.copy2(local_path, target)
            item["copy"] = str(target.relative_to(root))
            _kept_sources.add(os.path.abspath(local_path))
        root.mkdir(parents=True, exist_ok=True)
        with open(root / ITEMS, "a", encoding="utf-8") as items:  # one short append per item: safe across processes
            items.write(json.dumps(item, default=str) + "\n")
    except OSError as error:
        logger.warning("MLflow: %s cannot be kept for `kedro mlflow run replay` in %s: %s", what, folder, error)
        return None, None
    return item_id, str(root / item["copy"]) if "copy" in item else None


def has_pending(folder: Path | str | None) -> bool:
    """True when something is kept in ``folder`` for replay."""
    return bool(folder) and (Path(folder) / ITEMS).is_file()


def seal(folder: Path | str | None, run_id: str, earned: str, closed_as: str | None, owned: bool = True,  # noqa: PLR0913
         task: Mapping[str, Any] | None = None, env: str | None = None) -> None:
    """Record, when the run ends, the status it earned (replay sets it) and the one it got;
    ``owned`` False: replay leaves the run's status to whoever owns it, and for a ``task`` of a group
    run ({label, nodes}) records the outcome it earned, which ``run close`` reads."""
    if not has_pending(folder):
        return
    (Path(folder) / RUN_FILE).write_text(json.dumps({
        "run_id": run_id, "earned_status": earned, "closed_as": closed_as, "owned": owned, "task": task, "env": env,
        "ended_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }, indent=2) + "\n", encoding="utf-8")


def pending_runs(project_path: Path | str) -> list[str]:
    """Ids of the runs with something kept for replay in this project, oldest first."""
    root = Path(project_path) / PENDING_ROOT
    if not root.is_dir():
        return []
    found = [path for path in root.iterdir() if (path / ITEMS).is_file()]
    return [path.name for path in sorted(found, key=lambda path: path.stat().st_mtime)]


def recorded_env(folder: Path) -> str | None:
    """The ``--env`` the run kept in ``folder`` ran with (its mlflow.yml names the run's store), if recorded."""
    try:
        env = json.loads((folder / RUN_FILE).read_text(encoding="utf-8")).get("env")
    except (FileNotFoundError, ValueError):
        env = None
    return env or next((item["replay"]["env"] for item in read_items(folder) if item["replay"].get("env")), None)


def read_items(folder: Path) -> list[dict[str, Any]]:
    try:
        lines = (folder / ITEMS).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    return sorted((json.loads(line) for line in lines if line.strip()), key=lambda item: item["id"])


@dataclass
class ReplayResult:
    run_id: str
    replayed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # what -> why
    status: str | None = None  # the status the run was ended with (None: left as it was)

    def describe(self) -> str:
        text = f"MLflow run {self.run_id}: {len(self.replayed)} item(s) replayed"
        if self.failed:
            text += "; not replayed: " + "; ".join(f"{what} ({why})" for what, why in self.failed.items())
        if self.status:
            text += f"; run {self.status}"
        return text + "."


class Session:
    """What replaying a pipeline model or lineage needs: a Kedro session of the project in the
    run's ``--env`` with its ``--params`` (opened lazily, once per env and params)."""

    def __init__(self, open_session: Callable[[str | None, dict[str, Any]], AbstractContextManager[ProjectSession]]) -> None:
        self._open = open_session
        self._sessions: dict[str, ProjectSession] = {}
        self._stack = ExitStack()

    def get(self, env: str | None, runtime_params: Mapping[str, Any] | None) -> ProjectSession:
        """(context, MlflowConfig, pipelines) of the project for ``env`` and ``runtime_params``."""
        key = json.dumps([env, runtime_params or {}], sort_keys=True, default=str)
        if key not in self._sessions:
            self._sessions[key] = self._stack.enter_context(self._open(env, dict(runtime_params or {})))
        return self._sessions[key]

    def close(self) -> None:
        self._stack.close()


def replay_run(client: MlflowClient, folder: Path, run_id: str, session: Session) -> ReplayResult:
    """Log every item kept in ``folder`` into ``run_id``, then end the run with the status it earned."""
    from mlflow.exceptions import MlflowException

    from kedro_mlflow_starter.tracking.failures import describe_error  # failures imports this module

    result = ReplayResult(run_id)
    experiment_id = client.get_run(run_id).info.experiment_id  # a run that is gone fails here, before anything is logged
    remaining = read_items(folder)
    for item in list(remaining):
        if result.failed and item["replay"].get("kind") in ("pipeline_model", "lineage"):  # built from the run
            result.failed[item["what"]] = "an earlier item was not replayed"
            continue
        try:
            _replay_item(client, client.get_run(run_id), folder, item, session)
        except (MlflowException, OSError, ValueError, KeyError, TypeError, LookupError) as error:
            result.failed[item["what"]] = describe_error(error)
            continue
        result.replayed.append(item["what"])
        remaining.remove(item)
        temporary = folder / (ITEMS + ".new")  # a replay stopped here never logs it twice
        temporary.write_text("".join(json.dumps(kept, default=str) + "\n" for kept in remaining), encoding="utf-8")
        temporary.replace(folder / ITEMS)
    try:
        recorded = json.loads((folder / RUN_FILE).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        recorded = {}  # the run's process never ended it (kill -9): it earned no FINISHED
    if recorded.get("owned", True):
        earned = recorded.get("earned_status") or "FAILED"
        result.status = "FAILED" if remaining else earned
        fail_pending_models(client, experiment_id, run_id)  # uploads the outage cut short
        client.set_terminated(run_id, status=result.status)
    elif recorded.get("task") and not remaining:  # the task's outcome, which the outage kept from `run close`
        task = recorded["task"]
        record_task_outcome(client, run_id, task["label"], recorded.get("earned_status") or "FAILED",
                            nodes=task["nodes"], retried=False)
    if not remaining:
        shutil.rmtree(folder, ignore_errors=True)
        for parent in (folder.parent, folder.parent.parent):  # pending/, .kedro-mlflow/
            try:
                parent.rmdir()
            except OSError:
                break
    return result


def _replay_item(client: MlflowClient, run: Run, folder: Path, item: dict[str, Any], session: Session) -> None:
    replay = item["replay"]
    kind = replay.get("kind")
    copy = folder / item["copy"] if item.get("copy") else None
    run_id = run.info.run_id
    if kind == "metrics":
        from mlflow.entities import Metric

        client.log_batch(run_id, metrics=[Metric(key, float(value), int(timestamp), int(step))
                                          for key, value, step, timestamp in replay["points"]])
    elif kind in ("artifact", "model") and copy is None:
        raise FileNotFoundError(f"no local copy of {item['what']} was kept")
    elif kind == "artifact":
        if copy.is_dir():
            client.log_artifacts(run_id, str(copy), replay.get("artifact_path"))
        else:
            client.log_artifact(run_id, str(copy), replay.get("artifact_path"))
    elif kind == "model":
        _replay_model(client, run, copy, replay)
    elif kind == "finalize":
        from mlflow.entities import LoggedModelStatus

        client.finalize_logged_model(replay["model_id"], getattr(LoggedModelStatus, replay["status"]))
    elif kind == "register":
        register_model(replay["model_id"], replay["name"], replay.get("await_registration_for"))
    elif kind == "pipeline_model":
        from kedro_mlflow_starter.models.logging import log_pipeline_model  # imports mlflow

        context, _, pipelines = session.get(replay.get("env"), replay.get("runtime_params"))
        pipeline = pipelines[replay["pipeline"]]
        if not isinstance(pipeline, PipelineML):
            raise ValueError(f"pipeline '{replay['pipeline']}' is no longer a pipeline_ml_factory pipeline")
        with mlflow_prints_logged():
            log_pipeline_model(pipeline, context.catalog, run_id)
    elif kind == "lineage":
        from kedro_mlflow_starter.tracking.lineage_recorder import LineageRecorder  # imports failures, and so this

        context, config, pipelines = session.get(replay.get("env"), replay.get("runtime_params"))
        names = replay.get("pipeline_names") or ["__default__"]
        pipeline = sum((pipelines[name] for name in names[1:]), pipelines[names[0]])
        recorder = LineageRecorder.from_replay(replay, config.tracking.lineage, pipeline, context.catalog,
                                               project_path=config.project_path,
                                               secret_patterns=config.tracking.params.secret_patterns)
        recorder.finish(client, run_id, run.info.experiment_id, one_task_of_many=bool(replay.get("one_task_of_many")))
    else:
        raise ValueError(f"unknown item kind {kind!r} (kept by a newer kedro-mlflow-starter?)")


def _replay_model(client: MlflowClient, run: Run, copy: Path, replay: Mapping[str, Any]) -> None:
    """Log a model folder kept locally as the LoggedModel the run would have had."""
    from mlflow.entities import LoggedModelOutput, LoggedModelStatus
    from mlflow.models import Model

    run_id = run.info.run_id
    model_id = replay.get("model_id")
    if model_id is None:  # the store was down before the LoggedModel could be created
        params = {**run.data.params, **(replay.get("params") or {})}
        logged = client.create_logged_model(
            experiment_id=run.info.experiment_id, name=replay["name"], source_run_id=run_id,
            params={k: str(v) for k, v in params.items()}, tags=replay.get("tags") or None,
            model_type=replay.get("model_type"),
        )
        model_id = logged.model_id
        mlmodel = Model.load(str(copy / "MLmodel"))  # the MLmodel names the LoggedModel it belongs to
        mlmodel.model_id = model_id
        mlmodel.model_uuid = model_id
        mlmodel.run_id = run_id
        mlmodel.artifact_path = logged.artifact_location
        mlmodel.save(str(copy / "MLmodel"))
    client.log_outputs(run_id, [LoggedModelOutput(model_id, step=int(replay.get("step", 0)))])
    client.log_model_artifacts(model_id, str(copy))
    client.finalize_logged_model(model_id, LoggedModelStatus.READY)
    if replay.get("registered_model_name"):
        register_model(model_id, replay["registered_model_name"], replay.get("await_registration_for"))


def register_model(model_id: str, name: str, await_for: int | None = None) -> None:
    import mlflow

    with mlflow_prints_logged():
        mlflow.register_model(f"models:/{model_id}", name, await_registration_for=int(await_for or 0))
