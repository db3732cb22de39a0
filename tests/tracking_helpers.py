"""Read back what a `kedro run` left in a project's MLflow store."""

from __future__ import annotations

from typing import Any

from tests.project_factory import KedroProject


def client_for(project: KedroProject, uri: str | None = None) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri or project.tracking_uri)


def logged_models_of_run(client: Any, run_id: str) -> list[Any]:
    """The LoggedModels whose source run is ``run_id``."""
    run = client.get_run(run_id)
    return client.search_logged_models(
        experiment_ids=[run.info.experiment_id], filter_string=f"source_run_id = '{run_id}'"
    )


def runs_of(project: KedroProject, experiment: str | None = None, uri: str | None = None) -> list[Any]:
    client = client_for(project, uri)
    found = client.get_experiment_by_name(experiment or project.package)
    if found is None:
        return []
    return client.search_runs([found.experiment_id], max_results=1000)


def only_run(project: KedroProject, experiment: str | None = None, uri: str | None = None) -> Any:
    runs = runs_of(project, experiment, uri)
    assert len(runs) == 1, f"expected exactly one run, found {len(runs)}: {[r.info.run_name for r in runs]}"
    return runs[0]


def output(result: Any) -> str:
    return f"{result.stdout}\n{result.stderr}"
