"""The experiment a project's runs go to: found, created or restored as ``mlflow.yml`` says."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from kedro_mlflow_starter.config.mlflow_config import MlflowConfig
from kedro_mlflow_starter.config.uris import is_local_store
from kedro_mlflow_starter.errors import ExperimentDeletedError
from kedro_mlflow_starter.tracking.failures import call_with_retry
from kedro_mlflow_starter.tracking.store import store_creation_lock

if TYPE_CHECKING:  # pragma: no cover
    from mlflow import MlflowClient

logger = logging.getLogger(__name__)


def _artifact_location(config: MlflowConfig, tracking_uri: str) -> str | None:
    location = config.tracking.experiment.create_experiment_kwargs.artifact_location
    if config.project_path is None:
        return location
    if location is None and is_local_store(tracking_uri):
        return (Path(config.project_path) / "mlartifacts").resolve().as_uri()
    if location is not None and "://" not in location:
        return (Path(config.project_path) / location).resolve().as_uri()
    return location


def ensure_experiment(client: MlflowClient, config: MlflowConfig) -> str:
    """The id of the configured experiment, created or restored as ``mlflow.yml`` allows."""
    from mlflow.exceptions import MlflowException

    tracking_uri, name = config.tracking_uri(), config.experiment_name
    with store_creation_lock(tracking_uri):
        experiment = call_with_retry(lambda: client.get_experiment_by_name(name))
        if experiment is None:
            try:
                return client.create_experiment(name, artifact_location=_artifact_location(config, tracking_uri),
                                                tags=config.tracking.experiment.create_experiment_kwargs.tags)
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
