"""Fixtures for the dataset tests: one real SQLite store per session, one real run per test.

The hook normally opens the run and publishes it through environment variables; these
fixtures do the same by hand, so datasets are tested exactly as they run inside
``kedro run``, without a project.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from kedro.io import DataCatalog

from kedro_mlflow_starter.framework.catalog_checks import build_mlflow_datasets
from tests.project_factory import free_port, script_result

PKG = "kedro_mlflow_starter.io."
X = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 1.0], [3.0, 5.0]])
Y = np.array([1.0, 2.0, 4.0, 9.0])


@dataclass
class Store:
    root: Path
    tracking_uri: str
    experiment_id: str

    @property
    def client(self) -> Any:
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri)


@dataclass
class Run:
    store: Store
    run_id: str

    @property
    def client(self) -> Any:
        return self.store.client

    def artifacts(self, path: str = "") -> list[str]:
        """Every artifact file path under ``path``, recursively."""
        found: list[str] = []
        for item in self.client.list_artifacts(self.run_id, path or None):
            found += self.artifacts(item.path) if item.is_dir else [item.path]
        return sorted(found)

    def logged_models(self) -> list[Any]:
        return list(
            self.client.search_logged_models(
                experiment_ids=[self.store.experiment_id], filter_string=f"source_run_id = '{self.run_id}'"
            )
        )


@pytest.fixture(scope="session")
def io_store(tmp_path_factory: pytest.TempPathFactory, migrated_db: Path) -> Store:
    """A migrated SQLite store shared by the dataset tests, artifacts in its own folder."""
    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("io-store")
    shutil.copy(migrated_db, root / "mlflow.db")
    uri = f"sqlite:///{(root / 'mlflow.db').as_posix()}"
    experiment_id = MlflowClient(tracking_uri=uri).create_experiment(
        "io-tests", artifact_location=(root / "mlartifacts").as_uri()
    )
    return Store(root=root, tracking_uri=uri, experiment_id=experiment_id)


def start_run(store: Store, monkeypatch: pytest.MonkeyPatch) -> Run:
    """A new run in ``store``, published the way the hook publishes it."""
    run_id = store.client.create_run(store.experiment_id).info.run_id
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.tracking_uri)
    monkeypatch.setenv("KEDRO_MLFLOW_RUN_ID", run_id)
    monkeypatch.setenv("MLFLOW_RUN_ID", run_id)
    return Run(store=store, run_id=run_id)


@pytest.fixture
def run(io_store: Store, monkeypatch: pytest.MonkeyPatch) -> Run:
    """A fresh run, set as the current ``kedro run``'s run."""
    return start_run(io_store, monkeypatch)


@pytest.fixture
def no_run(io_store: Store, monkeypatch: pytest.MonkeyPatch) -> Store:
    """The store is configured but no run is open (a notebook without a session)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", io_store.tracking_uri)
    return io_store


@pytest.fixture
def failure_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The failure ledger the hook would name, empty."""
    path = tmp_path / "failures.jsonl"
    monkeypatch.setenv("KEDRO_MLFLOW_FAILURE_LOG", str(path))
    return path


@pytest.fixture
def tracking_off(monkeypatch: pytest.MonkeyPatch, io_store: Store) -> Store:
    """The hook decided this run is not tracked."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", io_store.tracking_uri)
    monkeypatch.setenv("KEDRO_MLFLOW_TRACKING_DISABLED", "1")
    return io_store


@pytest.fixture
def tracking_server_down(monkeypatch: pytest.MonkeyPatch) -> str:
    """The current run's tracking server does not answer (nothing listens on its port)."""
    uri = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    monkeypatch.setenv("KEDRO_MLFLOW_RUN_ID", "0" * 32)
    return uri


def runs_in(store: Store) -> list[str]:
    return [r.info.run_id for r in store.client.search_runs([store.experiment_id], max_results=5000)]


def catalog_of(entries: dict) -> DataCatalog:
    """A catalog built from ``entries`` and checked as the hook checks it."""
    catalog = DataCatalog.from_config(entries)
    build_mlflow_datasets(catalog)
    return catalog


def regressor(scale: float = 1.0):  # noqa: ANN201
    from sklearn.linear_model import LinearRegression

    return LinearRegression().fit(X, Y * scale)


def predict_in_fresh_interpreter(model_uri: str, tracking_uri: str | None = None) -> list[float]:
    """Load ``model_uri`` with pyfunc in a new Python process, as a serving user would."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "KEDRO_MLFLOW_"))}
    if tracking_uri:
        env["MLFLOW_TRACKING_URI"] = tracking_uri
    result = script_result("predict_with_model", {"input": {"array": X.tolist()},
                                                  "predictions": {"y": {"model_uri": model_uri}}},
                           env=env, timeout=120)
    return [float(v) for v in result["predictions"]["y"]["values"]]
