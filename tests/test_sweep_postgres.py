"""One sweep shared by several machines: a PostgreSQL-backed `mlflow server` and an Optuna
study in PostgreSQL (the team's existing server), two `kedro mlflow sweep` processes at the same
time (one with `--jobs 2`): three workers cooperate on one study and one parent. The first machine
is a `kedro` subprocess; the second, started once the first has founded the study, is the test
process itself (`kedro mlflow sweep` in process; its workers are processes, as always).
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from tests.postgres_fixture import PostgresCluster
from tests.project_factory import KEDRO
from tests.server_fixtures import MlflowServer
from tests.starter_fixtures import GeneratedProject, assert_ok, kedro_env, kedro_new, write_config

PACKAGE = "sweep_team"
STUDY = f"{PACKAGE}:c_search#1"
TRIALS = 4  # for three workers: each has one to claim and one is raced for
PASSWORD = "sweep-storage-s3cret"


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory, starter_home: Path, postgres: PostgresCluster,
         pg_mlflow_server: MlflowServer) -> tuple[GeneratedProject, str, str]:
    import psycopg

    out = tmp_path_factory.mktemp("sweep-team")
    config = write_config(out / "config.yml", project_name="Sweep Team", mlflow_tracking_uri="sqlite:///mlflow.db",
                          output_dir=str(out))
    assert_ok(kedro_new("--starter=mlflow-iris", f"--config={config}", cwd=out, home=starter_home), "kedro new")
    project = GeneratedProject(out / "sweep-team", starter_home)
    (project.path / "conf/local/mlflow.yml").write_text(
        f"server:\n  mlflow_tracking_uri: {pg_mlflow_server.uri}\n", encoding="utf-8")
    with psycopg.connect(postgres.uri("postgres"), autocommit=True) as connection:
        connection.execute("CREATE DATABASE sweeps")
    # with a password (trust authentication ignores it): it must reach no tag or param
    storage = postgres.uri("sweeps").replace("postgresql://postgres@", f"postgresql+psycopg://postgres:{PASSWORD}@")
    return project, pg_mlflow_server.uri, storage


def test_two_machines_three_workers_share_one_study_and_one_parent(team) -> None:
    import optuna
    from mlflow import MlflowClient

    project, server, storage = team
    verbosity = optuna.logging.get_verbosity()
    options = ["c_search", "--trials", str(TRIALS), "--storage", storage]
    machine = subprocess.Popen([KEDRO, "mlflow", "sweep", *options, "--jobs", "1"], cwd=project.path,
                               env=kedro_env(project.home), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for_study(storage, machine)
        here = project.kedro_in_process("mlflow", "sweep", *options, "--jobs", "2")
        outputs = [machine.communicate(timeout=400)[0], here.stdout + here.stderr]
    finally:
        if machine.poll() is None:
            machine.kill()
            machine.wait()
        optuna.logging.set_verbosity(verbosity)  # as the in-process sweep found it
    assert [machine.returncode, here.returncode] == [0, 0], "\n\n".join(o[-3000:] for o in outputs)
    assert sorted("joined" in o for o in outputs) == [False, True], outputs

    studies = [s for s in optuna.get_all_study_names(storage) if s.startswith(f"{PACKAGE}:c_search#")]
    assert studies == [f"{PACKAGE}:c_search#1"]
    trials = optuna.load_study(study_name=studies[0], storage=storage).get_trials()
    assert len(trials) == TRIALS, "exactly the sweep's trials, none duplicated"
    assert {t.state.name for t in trials} == {"COMPLETE"}, [t.user_attrs for t in trials if t.state.name != "COMPLETE"]

    client = MlflowClient(server)
    experiment = client.get_experiment_by_name(PACKAGE)
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("kedro_mlflow.sweep") == "c_search"]
    assert len(parents) == 1, "one parent run"
    parent = parents[0]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parent.info.run_id}, "no orphaned child"
    assert len(children) == TRIALS and {r.info.status for r in children} == {"FINISHED"}
    assert sorted(r.info.run_id for r in children) == sorted(t.user_attrs["kedro_mlflow.run_id"] for t in trials)
    assert len({r.data.tags["kedro.pid"] for r in children}) >= 2, "the trials ran in several workers"
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["sweep.completed_trials"] == TRIALS
    assert "sweep/trials.csv" in [a.path for a in client.list_artifacts(parent.info.run_id, "sweep")]
    redacted = storage.replace(f"postgres:{PASSWORD}@", "***@")
    assert parent.data.tags["kedro.command"] == f"kedro mlflow sweep c_search --storage={redacted} --trials={TRIALS}"
    assert parent.data.tags["kedro_mlflow.sweep.storage"] == redacted
    for run in [parent, *children]:
        assert PASSWORD not in repr((run.data.tags, run.data.params)), run.info.run_name


def _wait_for_study(storage: str, machine: subprocess.Popen[str]) -> None:
    """Until the first machine has founded the sweep's study (read with plain SQL: Optuna's own storage
    object would create its tables, racing the machine that does)."""
    import psycopg

    deadline = time.monotonic() + 240
    with psycopg.connect(storage.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as connection:
        while True:
            try:
                if connection.execute("SELECT 1 FROM studies WHERE study_name = %s", (STUDY,)).fetchone():
                    return
            except psycopg.errors.UndefinedTable:
                pass
            assert machine.poll() is None, machine.communicate()[0][-3000:]
            assert time.monotonic() < deadline, "the first machine never founded the study"
            time.sleep(0.2)
