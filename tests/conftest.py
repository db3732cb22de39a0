"""Shared fixtures: real Kedro projects, real SQLite tracking stores."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.project_factory import KedroProject, make_project

# Fixture modules shared by the whole suite, registered the pytest way.
pytest_plugins = ["tests.io_fixtures", "tests.server_fixtures", "tests.starter_fixtures"]

os.environ["KEDRO_DISABLE_TELEMETRY"] = "true"
os.environ.setdefault("DO_NOT_TRACK", "1")


@pytest.fixture(scope="session")
def migrated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty MLflow SQLite store, migrated once per test session (saves ~1.3 s a test)."""
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("store") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def project(tmp_path: Path, migrated_db: Path) -> KedroProject:
    """The default small project with a pre-migrated store at <project>/mlflow.db."""
    created = make_project(tmp_path)
    shutil.copy(migrated_db, created.db)
    return created


@pytest.fixture(autouse=True)
def _clean_mlflow_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never inherit a tracking URI or run id from the shell or from each other."""
    for key in list(os.environ):
        if key.startswith(("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_RUN_ID", "KEDRO_MLFLOW_")):
            monkeypatch.delenv(key, raising=False)
