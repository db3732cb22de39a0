"""Airflow 3: the starter's pipeline as a DAG made by `kedro airflow create` with the shipped
template (templates/airflow_dag_mlflow.j2), run with `airflow dags test`.

Airflow and kedro-airflow live in their own cached virtualenv (scripts/airflow_venv.sh); the
metadata DB is SQLite in a temp AIRFLOW_HOME. One DAG run is one MLflow run: opened by the
setup task, joined by every node task (the run id comes by XCom), closed by the teardown task.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.orchestrated_fixtures import new_iris_project, predict_in_fresh_interpreter, the_run
from tests.starter_fixtures import INSTANCE_ROWS, PACKAGE, REPO, GeneratedProject, iris_frame, kedro_env, \
    logged_models, run_summary

DAG_ID = PACKAGE.replace("_", "-")
NODES = ["split_data", "fit_preprocessor", "train_model", "evaluate_model", "report", "bundle_model"]


@pytest.fixture(scope="session")
def airflow_bin() -> Path:
    """The cached Airflow virtualenv's bin folder (built on first use, ~1 min)."""
    result = subprocess.run([str(REPO / "scripts" / "airflow_venv.sh")], capture_output=True, text=True,
                            timeout=1200, check=False)
    assert result.returncode == 0, f"building the Airflow virtualenv failed:\n{result.stdout}\n{result.stderr}"
    return Path(result.stdout.strip().splitlines()[-1]) / "bin"


@dataclass
class AirflowProject:
    project: GeneratedProject
    home: Path
    bin: Path

    def env(self) -> dict[str, str]:
        env = kedro_env(self.project.home, {
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.home / "dags"),
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        })
        env["PATH"] = f"{self.bin}{os.pathsep}{env['PATH']}"
        env.pop("VIRTUAL_ENV", None)
        return env

    def call(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.bin / args[0]), *args[1:]], cwd=self.project.path, env=self.env(),
                              capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def _ok(result: subprocess.CompletedProcess[str], what: str) -> None:
    assert result.returncode == 0, f"{what} failed ({result.returncode}):\n{result.stdout[-6000:]}\n{result.stderr[-6000:]}"


@pytest.fixture(scope="module")
def airflow_project(tmp_path_factory: pytest.TempPathFactory, airflow_bin: Path) -> AirflowProject:
    root = tmp_path_factory.mktemp("airflow")
    project = new_iris_project(root / "work", root / "home")
    made = AirflowProject(project, root / "airflow-home", airflow_bin)
    _ok(made.call("kedro", "airflow", "create", "--pipelines", "__default__",
                  "--jinja-file", "templates/airflow_dag_mlflow.j2", "--target-dir", str(made.home / "dags"),
                  "--params", "retries=0"), "kedro airflow create")
    _ok(made.call("airflow", "db", "migrate"), "airflow db migrate")
    return made


@pytest.fixture(scope="module")
def dag_run(airflow_project: AirflowProject) -> subprocess.CompletedProcess[str]:
    result = airflow_project.call("airflow", "dags", "test", DAG_ID)
    _ok(result, "airflow dags test")
    return result


def test_the_generated_dag_opens_the_run_before_the_nodes_and_closes_it_after(airflow_project: AirflowProject) -> None:
    dag = (airflow_project.home / "dags" / f"{PACKAGE}_dag.py").read_text(encoding="utf-8")
    assert "@setup" in dag and "@teardown(on_failure_fail_dagrun=True)" in dag
    for node in NODES:
        assert f'_run_kedro_node(mlflow_run_id, node_names=["{node}"])' in dag
    assert "list(tasks.values()) >> mlflow_close_run(mlflow_run_id)" in dag


def test_one_dag_run_is_one_finished_mlflow_run_with_everything(airflow_project: AirflowProject,
                                                                dag_run: subprocess.CompletedProcess[str],
                                                                tmp_path: Path) -> None:
    project = airflow_project.project
    runs = run_summary(project.tracking_uri, PACKAGE)["runs"]
    assert len(runs) == 1, runs
    run = the_run(project.tracking_uri, runs[0]["id"])
    assert run["status"] == "FINISHED"
    assert set(run["params"]) == {"target", "split_options.test_size", "split_options.random_state",
                                  "model_options.C", "model_options.max_iter"}  # every node's, flattened
    assert set(run["metrics"]) == {"test.accuracy", "test.f1_macro", "time.pipeline",
                                   *(f"time.node.{node}" for node in NODES)}
    assert set(run["artifacts"]) == {"reports/confusion_matrix.png", "reports/classification_report.txt",
                                     "kedro/pipeline.json", "kedro/pipeline.svg", "kedro/config/catalog.yml",
                                     "kedro/config/parameters.yml", "kedro/config/run.yml",
                                     *(f"kedro/model_artifacts/{name}/{file}" for name in ("classifier", "preprocessor")
                                       for file in ("spec.json", f"data/{name}.pkl"))}  # the run's own copies
    assert {k: v for k, v in run["tags"].items() if k.startswith("kedro.task.")} == {
        f"kedro.task.{node}": "FINISHED" for node in NODES}
    models = logged_models(project.tracking_uri, PACKAGE)
    assert len(models) == 2 and {m["run_id"] for m in models} == {run["id"]}  # the classifier, the pipeline model
    output = dag_run.stdout + dag_run.stderr
    closed = re.search(rf"MLflow run {run['id']} FINISHED: .*pipeline model (models:/[\w-]+)", output)
    assert closed, output[-3000:]
    assert closed.group(1) in {m["uri"] for m in models}
    species = predict_in_fresh_interpreter(project.tracking_uri, closed.group(1),
                                           project.path / "data/05_model_input/instances.csv",
                                           kedro_env(project.home), tmp_path / "model")
    assert species == iris_frame().loc[list(INSTANCE_ROWS), "species"].tolist()


def test_the_tasks_print_no_warning_of_skops_scanning_airflow(dag_run: subprocess.CompletedProcess[str]) -> None:
    """Saving the classifier (MLflow's skops format) in a task read every loaded module, Airflow's
    deprecated aliases included: ~1,100 DeprecatedImportWarning per task, 11,830 lines for one
    `airflow dags test`. Now the whole DAG run prints two warnings, both Airflow's own."""
    output = dag_run.stdout + dag_run.stderr
    lines = output.splitlines()
    warning_lines = [line for line in lines if "Warning" in line]
    print(f"airflow dags test: {len(lines)} lines, {len(warning_lines)} with a warning")
    assert output.count("DeprecatedImportWarning") == 0, "\n".join(warning_lines[:20])
    assert len(warning_lines) <= 5, "\n".join(warning_lines[:20])
    assert len(lines) < 1500, f"{len(lines)} lines of output"


def test_a_dag_whose_task_fails_makes_the_run_failed_and_names_the_task(
        airflow_project: AirflowProject, dag_run: subprocess.CompletedProcess[str]) -> None:
    project = airflow_project.project
    first = {r["id"] for r in run_summary(project.tracking_uri, PACKAGE)["runs"]}
    local = project.path / "conf" / "local" / "parameters_training.yml"
    local.write_text("model_options:\n  C: -1.0\n  max_iter: 500\n", encoding="utf-8")  # sklearn refuses C < 0
    try:
        result = airflow_project.call("airflow", "dags", "test", DAG_ID)
    finally:
        local.unlink()
    assert result.returncode != 0, "the DAG run should fail"
    runs = [r for r in run_summary(project.tracking_uri, PACKAGE)["runs"] if r["id"] not in first]
    assert len(runs) == 1, runs
    run = runs[0]
    assert run["status"] == "FAILED"
    assert run["tags"]["kedro.failed_tasks"] == "train_model"
    assert run["tags"]["kedro.task.train_model"].startswith("FAILED: ")
    assert "C" in run["tags"]["kedro.task.train_model"]
    assert "train_model" in run["tags"]["mlflow.note.content"]
    for node in ("split_data", "fit_preprocessor"):
        assert run["tags"][f"kedro.task.{node}"] == "FINISHED"
    assert not any(f"kedro.task.{node}" in run["tags"] for node in ("evaluate_model", "report", "bundle_model"))
    assert run["tags"]["kedro.missing_nodes"] == "bundle_model,evaluate_model,report"  # never ran
    assert not [m for m in logged_models(project.tracking_uri, PACKAGE) if m["run_id"] == run["id"]]
