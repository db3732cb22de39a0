"""In-process measurements, each run in a fresh interpreter by run.py: prints one JSON line.

    python inprocess.py sessions <project> <repeats>      session.run() wall times
    python inprocess.py metric_history <work dir> <repeats> 10,000-point history save
    python inprocess.py model_logging <project> <repeats>  pipeline-model logging after a run
    python inprocess.py lineage <project> <repeats>        session.run() with lineage on / off, alternated
    python inprocess.py digest <work dir> <repeats>        file-metadata digest of a 1 MB and a 100 MB file
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

os.environ["KEDRO_DISABLE_TELEMETRY"] = "true"


def _session_run(root: Path, pipeline: str | None = None) -> float:
    from kedro.framework.session import KedroSession

    with KedroSession.create(project_path=root) as session:
        start = time.perf_counter()
        session.run(pipeline_names=[pipeline] if pipeline else None)
        return time.perf_counter() - start


def sessions(root: Path, repeats: int) -> dict:
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(root)
    _session_run(root)  # warm imports and the store, as a long-lived process would be
    return {"times": [_session_run(root) for _ in range(repeats)]}


def lineage(root: Path, repeats: int) -> dict:
    """The same project with lineage on (``root``) and off (``root``-lineage-off: every
    ``tracking.lineage`` switch false), alternated in one warm process."""
    from kedro.framework.startup import bootstrap_project

    twin = root.with_name(root.name + "-lineage-off")
    bootstrap_project(root)
    _session_run(root)
    _session_run(twin)
    on, off = [], []
    for _ in range(repeats):
        on.append(_session_run(root))
        off.append(_session_run(twin))
    return {"on": on, "off": off}


def digest(work: Path, repeats: int) -> dict:
    """``file_metadata_digest`` of a 1 MB and a 100 MB file (real bytes), and a full read for scale."""
    import hashlib

    from kedro_mlflow_starter.tracking.lineage import file_metadata_digest

    work.mkdir(parents=True, exist_ok=True)
    files = {}
    for size_mb in (1, 100):
        path = work / f"data-{size_mb}mb.bin"
        with open(path, "wb") as handle:
            for _ in range(size_mb):
                handle.write(os.urandom(1024 * 1024))
        files[size_mb] = path
    times: dict[str, list[float]] = {"1": [], "100": []}
    for _ in range(repeats * 200):
        for size_mb, path in files.items():
            start = time.perf_counter()
            file_metadata_digest(path)
            times[str(size_mb)].append(time.perf_counter() - start)
    start = time.perf_counter()
    hashlib.sha256(files[100].read_bytes()).hexdigest()
    read_100 = time.perf_counter() - start
    for path in files.values():
        path.unlink()
    return {**times, "read_100": read_100}


def metric_history(work: Path, repeats: int) -> dict:
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    from kedro_mlflow_starter.io import MlflowMetricHistoryDataset

    work.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{work / 'metrics.db'}"
    os.environ["MLFLOW_TRACKING_URI"] = uri
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("bench") or client.get_experiment(
        client.create_experiment("bench", artifact_location=(work / "artifacts").as_uri()))
    values = [float(i) / 7 for i in range(10_000)]
    dataset_times, floor_times = [], []
    for _ in range(repeats):
        run = client.create_run(experiment.experiment_id)
        os.environ["KEDRO_MLFLOW_RUN_ID"] = run.info.run_id
        dataset = MlflowMetricHistoryDataset(key="loss")
        start = time.perf_counter()
        dataset.save(values)
        dataset_times.append(time.perf_counter() - start)
        stored = client.get_metric_history(run.info.run_id, "loss")
        assert len(stored) == len(values), len(stored)

        floor_run = client.create_run(experiment.experiment_id)
        now = int(time.time() * 1000)
        metrics = [Metric("loss", v, now, i) for i, v in enumerate(values)]
        start = time.perf_counter()
        client.log_batch(floor_run.info.run_id, metrics=metrics)
        floor_times.append(time.perf_counter() - start)
    return {"times": dataset_times, "floor": floor_times}


def param_floor(work: Path, repeats: int) -> dict:
    """MLflow's own cost of 1,000 params on SQLite: one client.log_batch (10 store calls)."""
    from mlflow import MlflowClient
    from mlflow.entities import Param

    work.mkdir(parents=True, exist_ok=True)
    client = MlflowClient(f"sqlite:///{work / 'params.db'}")
    experiment_id = client.create_experiment(f"params-{time.time_ns()}", artifact_location=work.as_uri())
    params = [Param(f"group{i // 100}.p{i % 100}", str(i)) for i in range(1000)]
    times = []
    for _ in range(repeats):
        run = client.create_run(experiment_id)
        start = time.perf_counter()
        client.log_batch(run.info.run_id, params=params)
        times.append(time.perf_counter() - start)
    return {"times": times}


def model_logging(root: Path, repeats: int) -> dict:
    """Time ``log_pipeline_model`` as the hook calls it after training.

    ``root`` is the untracked twin of the starter project: its run writes the artifacts
    without logging anything, so the plugin's own caches are cold as in a real run; MLflow
    and its sklearn flavor are imported first, as the tracked run's datasets would have.
    """
    from kedro.framework.project import pipelines
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(root)
    run_time = _session_run(root)
    import mlflow.sklearn  # noqa: F401 - imported by the model dataset in a tracked run
    from mlflow import MlflowClient

    from kedro_mlflow_starter.models.logging import log_pipeline_model

    client = MlflowClient()
    experiment_id = client.create_experiment(f"model-logging-{time.time_ns()}",
                                             artifact_location=(root / "mlartifacts").as_uri())
    times = []
    with KedroSession.create(project_path=root) as session:
        catalog = session.load_context().catalog
        training = pipelines["training"]
        for _ in range(repeats):
            run = client.create_run(experiment_id)
            start = time.perf_counter()
            log_pipeline_model(training, catalog, run.info.run_id)
            times.append(time.perf_counter() - start)
            client.set_terminated(run.info.run_id)
    return {"times": times, "run_time": run_time}


if __name__ == "__main__":
    kind, target, repeats = sys.argv[1], Path(sys.argv[2]).resolve(), int(sys.argv[3])
    if kind not in ("metric_history", "param_floor", "digest"):
        os.chdir(target)
        os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{target / 'mlflow.db'}")
    result = {"sessions": sessions, "metric_history": metric_history, "model_logging": model_logging,
              "param_floor": param_floor, "lineage": lineage, "digest": digest}[kind](
        target, repeats)
    print(json.dumps(result))
