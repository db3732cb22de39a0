"""Airflow's real scheduler, not `airflow dags test`: one DAG run of the starter, one MLflow run.

`airflow dags test` runs the tasks one after another in one process. Here Airflow 3 runs as it
is deployed: the API server, the DAG processor and the scheduler with the LocalExecutor, each
a process of its own, on a PostgreSQL metadata database (tests/postgres_fixture.py). The DAG is
the one `kedro airflow create` makes from the starter's template; the independent node tasks
(evaluate_model, report, bundle_model) run at the same time, each in its own process. The
tracking store is an `mlflow server` on PostgreSQL, as for tasks on several machines.

The close step stands for a worker on another machine: it runs in a copy of the project
without `data/` (the DAG's close task is pointed at it), so the pipeline model must be built
from what the run itself holds, not from files the tasks left on their disk. Expected: one
FINISHED run, every task FINISHED, and a pipeline model that predicts exactly like the run's
own scikit-learn estimator.

Slow (~4 min on 2 cores): not part of `make test`; `make test-airflow-scheduler` runs it (and
`.ci/run` after `make test`).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.orchestrated_fixtures import new_iris_project, set_tracking_uri
from tests.postgres_fixture import PG_BIN
from tests.project_factory import free_port, script_result
from tests.starter_fixtures import PACKAGE, GeneratedProject, kedro_env, run_summary
from tests.test_orchestrated_airflow import airflow_bin  # noqa: F401 - the cached Airflow venv, a fixture

if TYPE_CHECKING:
    from tests.postgres_fixture import PostgresCluster
    from tests.server_fixtures import MlflowServer

RUN_IT = "KMS_AIRFLOW_SCHEDULER"
pytestmark = pytest.mark.skipif(os.environ.get(RUN_IT) != "1",
                                reason=f"Airflow's real scheduler (~4 min): `make test-airflow-scheduler` sets {RUN_IT}=1")

DAG_ID = PACKAGE.replace("_", "-")
NODE_TASKS = ["split-data", "fit-preprocessor", "train-model", "evaluate-model", "report", "bundle-model"]
COMPONENTS = ("api-server", "dag-processor", "scheduler")
DAG_RUN_DEADLINE = 900.0
CLOSE_CALL = "closed = close_pipeline_run(project_path, mlflow_run_id,"


class Airflow:
    """The Airflow CLI of the cached venv, with this test's home, metadata DB and ports."""

    def __init__(self, bin_dir: Path, home: Path, project: GeneratedProject, database_uri: str) -> None:
        self.bin = bin_dir
        self.home = home
        self.project = project
        self.port = free_port()
        (home / "tmp").mkdir(parents=True, exist_ok=True)
        self.env = kedro_env(project.home, {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database_uri,
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": database_uri,
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.port}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": uuid.uuid4().hex,
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            "TMPDIR": str(home / "tmp"),  # Airflow's own temp files stay in this test's folder
        })
        self.env["PATH"] = f"{bin_dir}{os.pathsep}{self.env['PATH']}"
        self.env.pop("VIRTUAL_ENV", None)

    def call(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.bin / args[0]), *args[1:]], cwd=self.project.path, env=self.env,
                              capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    def ok(self, *args: str, timeout: float = 300) -> str:
        result = self.call(*args, timeout=timeout)
        assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        return result.stdout

    def json(self, *args: str) -> Any:
        """The JSON an `airflow ... -o json` command prints (its last line)."""
        return json.loads(self.ok(*args, "-o", "json").strip().splitlines()[-1])

    @contextmanager
    def running(self) -> Iterator[None]:
        """The API server, the DAG processor and the scheduler, each a process (group) of its own."""
        processes = []
        try:
            for component in COMPONENTS:
                log = open(self.home / f"{component}.log", "wb")  # noqa: SIM115 - the process writes it
                processes.append(subprocess.Popen(
                    [str(self.bin / "airflow"), component], cwd=self.project.path, env=self.env, stdout=log,
                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True))
                log.close()
            yield
        finally:
            for process in processes:
                with suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
            for process in processes:
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    with suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)
                    process.wait(timeout=30)

    def logs(self) -> str:
        return "\n".join(f"== {c}\n" + (self.home / f"{c}.log").read_text(errors="replace")[-3000:] for c in COMPONENTS)


def _wait_for(what: str, check: Any, deadline: float, airflow: Airflow, every: float = 3.0) -> Any:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        found = check()
        if found:
            return found
        time.sleep(every)
    pytest.fail(f"{what} within {deadline:.0f} s\n{airflow.logs()}")


def _close_worker(project: GeneratedProject, root: Path) -> Path:
    """The project as another machine has it: its code and conf, none of the tasks' files."""
    worker = root / "close-worker" / project.path.name
    shutil.copytree(project.path, worker, ignore=shutil.ignore_patterns(
        "data", "mlflow.db*", "mlartifacts", "mlruns", ".kedro-mlflow", "__pycache__"))
    return worker


def _interval(task: dict[str, Any]) -> tuple[datetime, datetime]:
    return datetime.fromisoformat(task["start_date"]), datetime.fromisoformat(task["end_date"])


def test_the_real_scheduler_runs_tasks_in_parallel_into_one_finished_run_with_the_right_model(
        tmp_path: Path, airflow_bin: Path, postgres: PostgresCluster,  # noqa: F811 - the fixture imported above
        pg_mlflow_server: MlflowServer) -> None:
    started = time.monotonic()
    project = new_iris_project(tmp_path / "work", tmp_path / "home")
    set_tracking_uri(project, pg_mlflow_server.uri)
    database = f"airflow_{uuid.uuid4().hex[:8]}"
    postgres._run(str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(postgres.port), "-U", "postgres", database)
    airflow = Airflow(airflow_bin, tmp_path / "airflow-home", project,
                      f"postgresql+psycopg://postgres@127.0.0.1:{postgres.port}/{database}")
    airflow.ok("kedro", "airflow", "create", "--pipelines", "__default__", "--jinja-file",
               "templates/airflow_dag_mlflow.j2", "--target-dir", str(airflow.home / "dags"), "--params", "retries=0")
    dag_file = airflow.home / "dags" / f"{PACKAGE}_dag.py"
    dag = dag_file.read_text(encoding="utf-8")
    assert dag.count(CLOSE_CALL) == 1, "the template's close task changed: update this test's stand-in"
    worker = _close_worker(project, tmp_path)
    dag_file.write_text(dag.replace(CLOSE_CALL, f"closed = close_pipeline_run({str(worker)!r}, mlflow_run_id,"),
                        encoding="utf-8")
    airflow.ok("airflow", "db", "migrate", timeout=600)
    ready = time.monotonic()

    with airflow.running():
        _wait_for("the DAG processor did not parse the DAG",
                  lambda: DAG_ID in {d["dag_id"] for d in airflow.json("airflow", "dags", "list")}, 300, airflow)
        airflow.ok("airflow", "dags", "unpause", DAG_ID)  # @once since 2023: the scheduler starts one run

        def finished() -> dict[str, Any] | None:
            runs = airflow.json("airflow", "dags", "list-runs", DAG_ID)
            return next((r for r in runs if r["state"] in ("success", "failed")), None)

        dag_run = _wait_for("the DAG run did not end", finished, DAG_RUN_DEADLINE, airflow, every=5.0)
        tasks = {t["task_id"]: t for t in airflow.json("airflow", "tasks", "states-for-dag-run", DAG_ID,
                                                        dag_run["run_id"])}
    ran = time.monotonic()

    states = {task_id: task["state"] for task_id, task in tasks.items()}
    close_log = "\n".join(p.read_text(errors="replace")[-6000:]
                          for p in (airflow.home / "logs").rglob("*.log") if "mlflow-close-run" in str(p))
    assert dag_run["state"] == "success", f"{states}\n{close_log}"
    assert states == {task: "success" for task in [*NODE_TASKS, "mlflow-open-run", "mlflow-close-run"]}
    # The last wave (evaluate_model, report, bundle_model) ran at the same time, in processes of their own.
    last_wave = [_interval(tasks[task]) for task in ("evaluate-model", "report", "bundle-model")]
    overlap = min(end for _, end in last_wave) - max(start for start, _ in last_wave)
    assert overlap.total_seconds() > 0, f"the last wave did not run in parallel: {last_wave}"
    assert not (worker / "data").exists(), "the close step's worker must not hold the tasks' data/"

    [run] = run_summary(pg_mlflow_server.uri, PACKAGE)["runs"]
    assert run["status"] == "FINISHED", run["tags"].get("mlflow.note.content")
    assert {k: v for k, v in run["tags"].items() if k.startswith("kedro.task.")} == {
        f"kedro.task.{task.replace('-', '_')}": "FINISHED" for task in NODE_TASKS}
    client = pg_mlflow_server.client  # (logged_models reads each MLmodel through a temp folder MLflow leaves)
    models = {m.name: f"models:/{m.model_id}" for m in client.search_logged_models(
        [client.get_run(run["id"]).info.experiment_id], filter_string=f"source_run_id = '{run['id']}'")}
    assert set(models) == {"iris_sklearn_estimator", "iris_pipeline_model"}, models

    # The pipeline model predicts exactly as the run's own estimator (species and probability).
    instances = project.path / "data/05_model_input/instances.csv"
    for folder in ("pipeline-model", "estimator"):  # where the models are downloaded (MLflow's own temp copy would stay)
        (tmp_path / folder).mkdir()
    predicted = script_result(
        "predict_with_model",
        {"tracking_uri": pg_mlflow_server.uri, "input": {"csv": str(instances)}, "predictions": {
            "pipeline": {"model_uri": models["iris_pipeline_model"], "dst_path": str(tmp_path / "pipeline-model")},
            "estimator": {"model_uri": models["iris_sklearn_estimator"], "flavor": "sklearn",
                          "dst_path": str(tmp_path / "estimator")},
            "probabilities": {"model_uri": models["iris_sklearn_estimator"], "flavor": "sklearn",
                              "dst_path": str(tmp_path / "estimator"), "method": "predict_proba"},
        }},
        what="predicting with the run's models", cwd=tmp_path, env=kedro_env(project.home), timeout=300)["predictions"]
    pipeline = predicted["pipeline"]["data"]
    assert pipeline["species"] == predicted["estimator"]["values"]
    assert pipeline["probability"] == [round(max(row), 4) for row in predicted["probabilities"]["values"]]
    print(f"real scheduler: set-up {ready - started:.0f} s, DAG run {ran - ready:.0f} s "
          f"(last wave overlap {overlap.total_seconds():.1f} s), total {time.monotonic() - started:.0f} s")
