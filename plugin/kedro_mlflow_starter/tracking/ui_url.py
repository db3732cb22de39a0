"""Addresses in the MLflow UI, in its machine-learning view (MLflow 3 opens in its GenAI view
unless the query after the ``#/...`` route asks for ``workflowType=machine_learning``)."""

from __future__ import annotations

ML_VIEW = "workflowType=machine_learning"


def ui_base(tracking_uri: str, host: str, port: int) -> str:
    """The UI's root: the tracking server itself, or ``kedro mlflow ui``'s for a local store."""
    if tracking_uri.startswith(("http://", "https://")):
        return tracking_uri.rstrip("/")
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104 - a bind address is not a URL
    return f"http://{shown}:{port}"


def experiment_url(base: str, experiment_id: str | None) -> str:
    """The experiment's runs list (or the experiments list without an id), ML view."""
    route = f"/experiments/{experiment_id}" if experiment_id else "/experiments"
    return f"{base}/#{route}?{ML_VIEW}"


def run_url(base: str, experiment_id: str, run_id: str) -> str:
    """One run's page, ML view."""
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}?{ML_VIEW}"
