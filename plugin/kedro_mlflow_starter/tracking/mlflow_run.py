"""The one MLflow run of a ``kedro run``: experiment, start/resume, batched logging, end.

Every call goes through ``MlflowClient`` with the run id; the fluent API's thread-local
active run is only consulted to reuse a run an orchestrator already started.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kedro_mlflow_starter.config.errors import KedroMlflowUserError
from kedro_mlflow_starter.config.mlflow_config import MlflowConfig
from kedro_mlflow_starter.config.uris import is_local_store
from kedro_mlflow_starter.logging_failures import call_with_retry
from kedro_mlflow_starter.tracking.store import store_creation_lock

if TYPE_CHECKING:  # pragma: no cover
    from mlflow import MlflowClient

logger = logging.getLogger(__name__)


class ExperimentDeletedError(KedroMlflowUserError, RuntimeError):
    pass


@dataclass
class OpenRun:
    run_id: str
    run_name: str
    experiment_id: str
    experiment_name: str
    owned: bool  # False: an orchestrator's run that we log into and leave open
    task: str | None = None  # set when joining a `kedro mlflow run open` run: what this task runs
    task_error: str | None = None


# MLflow narrates routine steps at INFO on its own handler ("Creating initial MLflow database
# tables...", "Validating input example against model signature"); a kedro run prints its own
# summary instead. Their warnings still show, and a logger the project configured is left alone.
_CHATTY_MLFLOW_LOGGERS = ("mlflow.store.db.utils", "mlflow.pyfunc", "mlflow.models.model")


def quiet_mlflow_info() -> None:
    for name in _CHATTY_MLFLOW_LOGGERS:
        chatty = logging.getLogger(name)
        if chatty.level == logging.NOTSET:
            chatty.setLevel(logging.WARNING)


def make_client(tracking_uri: str, registry_uri: str | None) -> MlflowClient:
    """A client; creating it creates (migrates) a new SQLite store, one process at a time."""
    from mlflow import MlflowClient

    quiet_mlflow_info()

    with store_creation_lock(tracking_uri):
        return call_with_retry(lambda: MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri))


def ensure_experiment(client: MlflowClient, config: MlflowConfig, tracking_uri: str) -> str:
    """The id of the configured experiment, created or restored as ``mlflow.yml`` allows."""
    name = config.experiment_name
    with store_creation_lock(tracking_uri):
        return _ensure_experiment(client, config, tracking_uri, name)


def _ensure_experiment(client: MlflowClient, config: MlflowConfig, tracking_uri: str, name: str) -> str:
    from mlflow.exceptions import MlflowException

    experiment = call_with_retry(lambda: client.get_experiment_by_name(name))
    if experiment is None:
        kwargs = config.tracking.experiment.create_experiment_kwargs
        location = kwargs.artifact_location
        if location is None and is_local_store(tracking_uri) and config.project_path is not None:
            location = (Path(config.project_path) / "mlartifacts").resolve().as_uri()
        elif location is not None and "://" not in location and config.project_path is not None:
            location = (Path(config.project_path) / location).resolve().as_uri()
        try:
            return client.create_experiment(name, artifact_location=location, tags=kwargs.tags)
        except MlflowException as error:  # created by a concurrent `kedro run` in between
            if "RESOURCE_ALREADY_EXISTS" not in str(error.error_code):
                raise
            experiment = client.get_experiment_by_name(name)
    if experiment.lifecycle_stage == "deleted":
        if not config.tracking.experiment.restore_if_deleted:
            raise ExperimentDeletedError(
                f"MLflow experiment '{name}' is deleted. Restore it (`mlflow experiments restore "
                f"--experiment-id {experiment.experiment_id}`), set tracking.experiment.restore_if_deleted: "
                "true in mlflow.yml, or choose another tracking.experiment.name."
            )
        client.restore_experiment(experiment.experiment_id)
        logger.info("Restored the deleted MLflow experiment '%s'.", name)
    return experiment.experiment_id


def orchestrator_run_id(nested: bool) -> str | None:
    """A run that something else already opened in this process or handed down by env."""
    if not nested:
        return None
    if os.environ.get("MLFLOW_RUN_ID"):
        return os.environ["MLFLOW_RUN_ID"]
    if "mlflow" in sys.modules:  # nothing can be active if mlflow was never imported
        import mlflow

        active = mlflow.active_run()
        if active is not None:
            return active.info.run_id
    return None


def open_run(
    client: MlflowClient,
    config: MlflowConfig,
    experiment_id: str,
    run_name: str,
    tags: dict[str, str],
) -> OpenRun:
    """Start a new run, resume ``tracking.run.id``, or join an orchestrator's run."""
    from mlflow.entities import RunStatus

    experiment_name = config.experiment_name
    resume_id = config.tracking.run.id
    joined = orchestrator_run_id(config.tracking.run.nested) if resume_id is None else None
    if resume_id or joined:
        run = client.get_run(resume_id or joined)
        if resume_id:
            client.update_run(run.info.run_id, status=RunStatus.to_string(RunStatus.RUNNING))
        experiment = client.get_experiment(run.info.experiment_id)
        return OpenRun(run.info.run_id, run.info.run_name, run.info.experiment_id, experiment.name, owned=not joined)
    run = call_with_retry(lambda: client.create_run(experiment_id, run_name=run_name, tags=tags))
    return OpenRun(run.info.run_id, run.info.run_name, experiment_id, experiment_name, owned=True)


def log_params_and_tags(client: MlflowClient, run_id: str, params: dict[str, str], tags: dict[str, str]) -> None:
    """One ``log_batch``: the client splits it into MLflow's 100-entry chunks."""
    from mlflow.entities import Param, RunTag

    if not params and not tags:
        return
    call_with_retry(
        lambda: client.log_batch(
            run_id,
            params=[Param(key, value) for key, value in params.items()],
            tags=[RunTag(key, value) for key, value in tags.items()],
        )
    )


def end_run(client: MlflowClient, run_id: str, status: str) -> None:
    """Close the run with ``status`` and drop it from MLflow's fluent stack if user code joined it."""
    if "mlflow" in sys.modules:
        import mlflow

        active = mlflow.active_run()
        if active is not None and active.info.run_id == run_id:
            mlflow.end_run(status=status)
            return
    call_with_retry(lambda: client.set_terminated(run_id, status=status))
