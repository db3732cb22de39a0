"""A real ``mlflow server`` for the team-server tests.

``start_server`` launches the venv's ``mlflow server`` on 127.0.0.1 and a free port, with a
SQLite backend and ``--artifacts-destination`` in a temp folder, artifacts served (proxied)
by the server, one worker; it waits for ``/health`` with a bounded deadline. The session
fixture ``mlflow_server`` shares one server between the tests that leave it running; a test
that kills its server starts its own with ``start_server``.

``make_team_project`` builds a small project that uses every kind of MLflow dataset:
``fit`` trains a scikit-learn regression (kept as a local pickle for inference and logged
as a model through ``MlflowModelTrackingDataset``); ``evaluate`` writes predictions (an
artifact CSV) and r2 (a metric). The training pipeline is a ``PipelineML`` whose inference
pipeline predicts on ``instances``, so the hook logs a pipeline model at the end. Its nodes
can pause at a step (``TEST_PAUSE_DIR``/``TEST_PAUSE_STEP``): they write
``<step>.started`` and wait for ``<step>.go``, so a test acts at a known point of the run.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.project_factory import KedroProject, free_port, make_project, project_env

MLFLOW = str(Path(sys.executable).with_name("mlflow"))
STARTUP_DEADLINE = 120.0



@dataclass
class MlflowServer:
    process: subprocess.Popen[bytes]
    port: int
    root: Path

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def artifacts(self) -> Path:
        """The server's ``--artifacts-destination``: where uploaded artifacts end up."""
        return self.root / "artifacts"

    @property
    def backend(self) -> Path:
        return self.root / "server.db"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    @property
    def client(self) -> Any:
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.uri)

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """Kill the server and its workers at once (SIGKILL to its process group)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if not self.alive():
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()


def healthy(uri: str) -> bool:
    try:
        with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def start_server(root: Path, extra_args: tuple[str, ...] = (), backend_store_uri: str | None = None) -> MlflowServer:
    """``mlflow server`` with its store and artifacts under ``root``, healthy when returned
    (``backend_store_uri``: another store than ``root/server.db``, e.g. PostgreSQL)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "artifacts").mkdir(exist_ok=True)
    port = free_port()
    command = [
        MLFLOW, "server",
        "--host", "127.0.0.1",
        "--port", str(port),
        "--backend-store-uri", backend_store_uri or f"sqlite:///{(root / 'server.db').as_posix()}",
        "--artifacts-destination", str(root / "artifacts"),
        "--serve-artifacts",
        "--workers", "1",
        *extra_args,
    ]
    log = open(root / "server.log", "ab")  # noqa: SIM115 - the server writes to it while it runs
    env = project_env({"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
    process = subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, start_new_session=True)
    log.close()
    server = MlflowServer(process=process, port=port, root=root)
    deadline = time.monotonic() + STARTUP_DEADLINE
    while time.monotonic() < deadline:
        if not server.alive():
            raise RuntimeError(f"mlflow server exited ({process.returncode}):\n{server.log.read_text()}")
        if healthy(server.uri):
            return server
        time.sleep(0.3)
    server.kill()
    raise RuntimeError(f"mlflow server did not become healthy in {STARTUP_DEADLINE} s:\n{server.log.read_text()}")


@contextlib.contextmanager
def running_server(root: Path, extra_args: tuple[str, ...] = ()) -> Iterator[MlflowServer]:
    server = start_server(root, extra_args)
    try:
        yield server
    finally:
        server.stop()


_shared: MlflowServer | None = None


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """One tracking server for the whole test session (tests must not stop it).

    Each test module imports this fixture, which makes one session fixture per module in
    pytest's eyes; the module-level ``_shared`` keeps them on a single server, stopped when
    the session ends.
    """
    global _shared
    if _shared is None or not _shared.alive():
        _shared = start_server(tmp_path_factory.mktemp("mlflow-server"))
    yield _shared
    _shared.stop()


PKG = "kedro_mlflow_starter.io."

NODES = '''
import os
import time
from pathlib import Path

import pandas as pd


def _pause_here(step: str) -> None:
    """Test hook: write '<step>.started', then wait for '<step>.go' (if the test asked to)."""
    folder = os.environ.get("TEST_PAUSE_DIR")
    if not folder or os.environ.get("TEST_PAUSE_STEP") != step:
        return
    Path(folder, step + ".started").write_text(str(os.getpid()))
    go = Path(folder, step + ".go")
    while not go.exists():
        time.sleep(0.1)


def fit(raw: pd.DataFrame, factor: float):
    _pause_here("fit")
    from sklearn.linear_model import LinearRegression

    model = LinearRegression().fit(raw[["a"]], raw["b"] * factor)
    return model, model


def evaluate(model, raw: pd.DataFrame):
    _pause_here("evaluate")
    predictions = pd.DataFrame({"prediction": model.predict(raw[["a"]])})
    return predictions, float(model.score(raw[["a"]], raw["b"] * 2.0))


def predict(instances: pd.DataFrame, model) -> pd.DataFrame:
    return pd.DataFrame({"prediction": model.predict(instances[["a"]])})


def call_service(token: str, predictions: pd.DataFrame) -> dict:
    """Stands for a node that uses a secret (an API token) to publish results."""
    return {"published_rows": len(predictions), "token_length": len(token)}
'''

REGISTRY = '''
from kedro.pipeline import Pipeline, node

from kedro_mlflow_starter import pipeline_ml_factory


def register_pipelines():
    from {package}.nodes import evaluate, fit, predict

    training = Pipeline([
        node(fit, ["raw", "params:factor"], ["regressor", "regressor_model"], name="fit"),
        node(evaluate, ["regressor", "raw"], ["predictions", "r2"], name="evaluate"),
    ])
    inference = Pipeline([node(predict, ["instances", "regressor"], "served_predictions", name="predict")])
    training_ml = pipeline_ml_factory(training, inference, input_name="instances")
    return {{"__default__": training_ml, "training": training_ml}}
'''

CATALOG: dict[str, Any] = {
    "raw": {"type": "pandas.CSVDataset", "filepath": "data/01_raw/raw.csv"},
    "instances": {"type": "pandas.CSVDataset", "filepath": "data/01_raw/raw.csv"},
    "regressor": {"type": "pickle.PickleDataset", "filepath": "data/06_models/regressor.pkl"},
    "regressor_model": {"type": PKG + "MlflowModelTrackingDataset", "flavor": "mlflow.sklearn"},
    "predictions": {"type": PKG + "MlflowArtifactDataset", "artifact_path": "outputs",
                    "dataset": {"type": "pandas.CSVDataset", "filepath": "data/07_model_output/predictions.csv"}},
    "r2": {"type": PKG + "MlflowMetricDataset"},
}

LOCAL_OUTPUTS = ["data/06_models/regressor.pkl", "data/07_model_output/predictions.csv"]


def make_team_project(root: Path, tracking_uri: str, package: str = "team_project",
                      mlflow_yml: dict[str, Any] | None = None,
                      catalog: dict[str, Any] | None = None, registry: str = REGISTRY,
                      parameters: dict[str, Any] | None = None) -> KedroProject:
    """The project above, tracking to ``tracking_uri`` (merged into ``mlflow_yml``)."""
    config = dict(mlflow_yml or {})
    config.setdefault("server", {})
    config["server"] = {"mlflow_tracking_uri": tracking_uri, **config["server"]}
    return make_project(root, package=package, nodes=NODES, registry=registry, catalog=catalog or CATALOG,
                        mlflow_yml=config, parameters=parameters, raw_rows=6)


def all_artifacts(client: Any, run_id: str, path: str | None = None) -> list[str]:
    found: list[str] = []
    for item in client.list_artifacts(run_id, path):
        found += all_artifacts(client, run_id, item.path) if item.is_dir else [item.path]
    return sorted(found)
