"""The user's own run (``with mlflow.start_run(): session.run()``) is joined in the store where it
lives, even when ``mlflow.yml`` names another (one warning says so)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from kedro_mlflow_starter.config.mlflow_config import MlflowConfig
from kedro_mlflow_starter.config.redaction import redact_uri
from kedro_mlflow_starter.config.uris import resolve_tracking_uri
from kedro_mlflow_starter.tracking.client import client_for
from kedro_mlflow_starter.tracking.current import user_run_id

logger = logging.getLogger("kedro_mlflow_starter")

_user_run_stores: dict[str, str] = {}  # run id -> the tracking URI it was opened with


def remember_user_run_store() -> None:
    """Note the store of the run user code made active, before the session publishes ``mlflow.yml``'s
    store as ``MLFLOW_TRACKING_URI`` (a no-op, importing nothing, when nothing imported ``mlflow``)."""
    run_id = user_run_id()
    if run_id is not None and run_id not in _user_run_stores:
        import mlflow

        _user_run_stores[run_id] = _absolute(mlflow.get_tracking_uri())


def config_for_user_run(config: MlflowConfig) -> MlflowConfig:
    """``config``, or a copy whose store is the one the user's active run lives in (a run joined:
    ``tracking.run.nested``, no ``tracking.run.id``, no orchestrator's ``MLFLOW_RUN_ID``)."""
    run_id = user_run_id() if config.tracking.run.nested and not config.tracking.run.id else None
    if run_id is None or os.environ.get("MLFLOW_RUN_ID") not in (None, "", run_id):
        return config
    import mlflow

    user_uri = _user_run_stores.get(run_id) or _absolute(mlflow.get_tracking_uri())
    configured = config.tracking_uri()
    if user_uri == configured:
        return config
    experiment = _experiment_of(run_id, user_uri)
    if experiment is None:  # not there either: joining fails in mlflow.yml's store, naming it
        return config
    logger.warning(
        "MLflow: joining run %s, which your code opened with mlflow.start_run() in %s (experiment '%s'); "
        "the store mlflow.yml names (%s) is set aside for this run. To track in mlflow.yml's store, call "
        "mlflow.set_tracking_uri(%r) before mlflow.start_run(), or set server.mlflow_tracking_uri to the "
        "store you open runs in.",
        run_id, redact_uri(user_uri), experiment, redact_uri(configured), redact_uri(configured),
    )
    # The user's own fluent calls after session.run() (ending their run) talk to that store too.
    os.environ["MLFLOW_TRACKING_URI"] = user_uri
    server = config.server.model_copy(update={"mlflow_tracking_uri": user_uri})
    experiment_config = config.tracking.experiment.model_copy(update={"name": experiment})
    tracking = config.tracking.model_copy(update={"experiment": experiment_config})
    return config.model_copy(update={"server": server, "tracking": tracking})


def _experiment_of(run_id: str, uri: str) -> str | None:
    """The name of the experiment of ``run_id`` in the store ``uri``, or None when it is not there."""
    from mlflow.exceptions import MlflowException

    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).is_file():
        return None  # no such store: never create one just to look
    client = client_for(uri)
    try:
        run = client.get_run(run_id)
        return client.get_experiment(run.info.experiment_id).name
    except MlflowException:
        return None


def _absolute(uri: str) -> str:
    """A local store's URI with its path made absolute against the current directory, as MLflow reads it."""
    try:
        return resolve_tracking_uri(uri, Path.cwd())
    except ValueError:  # a scheme we do not resolve: compare it as it is
        return uri
