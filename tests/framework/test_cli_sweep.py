"""`kedro mlflow sweep` on a project generated from the starter, against its embedded SQLite store.

One project for the module; each test runs its own sweep (the starter's `c_grid` and
`c_search`, and sweeps of conf/local/sweeps.yml) as a user would, then reads back what MLflow and the
Optuna study hold. The trials always run in the sweep's worker processes; the `kedro mlflow sweep`
command itself runs in the test process (``run_sweep``), except where a signal to it is the point.
"""

from __future__ import annotations

import csv
import io
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from kedro_mlflow_starter.config.sweeps import parse_sweeps
from kedro_mlflow_starter.errors import SweepConfigError
from tests.orchestrated_fixtures import new_iris_project
from tests.project_factory import KEDRO
from tests.server_fixtures import all_artifacts
from tests.starter_fixtures import PACKAGE, GeneratedProject, assert_ok, kedro_env, run_summary


TRIAL_HOOKS = '''"""Test-only project hooks: with SWEEP_PAUSE_MARKER set, the trial that trains with
max_iter=300 writes that file after train_model and hangs, so the test signals a known trial. With
SWEEP_BARRIER set (a folder), each trial waits after saving its split until two trials have, then logs
how many rows train_model was given."""

import os
import time
from pathlib import Path

import mlflow
from kedro.framework.hooks import hook_impl


class PauseTrial:
    @hook_impl
    def after_node_run(self, node, outputs):
        marker = os.environ.get("SWEEP_PAUSE_MARKER")
        if marker and node.name == "train_model" and outputs["classifier"].max_iter == 300:
            Path(marker).write_text(str(os.getpid()))
            time.sleep(120)


class TrialBarrier:
    @hook_impl
    def before_dataset_loaded(self, dataset_name, node):
        barrier = os.environ.get("SWEEP_BARRIER")
        if barrier and node.name == "fit_preprocessor" and dataset_name == "train_set":
            Path(barrier, str(os.getpid())).touch()
            deadline = time.monotonic() + 60
            while len(os.listdir(barrier)) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)

    @hook_impl
    def before_node_run(self, node, inputs):
        if os.environ.get("SWEEP_BARRIER") and node.name == "train_model":
            mlflow.log_metric("rows.train_set", len(inputs["train_set"]))
'''


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, starter_home: Path, generated_tree: dict[str, bytes],
            migrated_db: Path) -> GeneratedProject:
    """A copy of the session's `kedro new --starter=mlflow-iris` project, its embedded SQLite store pre-migrated."""
    generated = new_iris_project(tmp_path_factory.mktemp("sweep"), starter_home, generated_tree)
    shutil.copy(migrated_db, generated.path / "mlflow.db")
    package = generated.path / "src" / PACKAGE
    (package / "trial_hooks.py").write_text(TRIAL_HOOKS, encoding="utf-8")
    with open(package / "settings.py", "a", encoding="utf-8") as settings:
        settings.write("\nfrom .trial_hooks import PauseTrial, TrialBarrier\n\nHOOKS = (PauseTrial(), TrialBarrier())\n")
    (generated.path / "conf/local/sweeps.yml").write_text(yaml.safe_dump({
        # trial #1 fails (scikit-learn refuses max_iter=-1); the sweep is SIGTERMed after it
        "slow": {"objective": {"metric": "test.accuracy"}, "method": "grid",
                 "params": {"model_options.max_iter": [500, -1, 300, 200]}},
        "split": {"objective": {"metric": "test.accuracy"}, "method": "grid",
                  "params": {"split_options.test_size": [0.2, 0.6]}},
    }), encoding="utf-8")
    return generated


def run_sweep(project: GeneratedProject, *args: str) -> subprocess.CompletedProcess[str]:
    """``kedro mlflow sweep ARGS`` in the test process (its workers are processes of their own, as always);
    the Optuna log level the command sets is restored after."""
    import optuna

    verbosity = optuna.logging.get_verbosity()
    try:
        return project.kedro_in_process("mlflow", "sweep", *args)
    finally:
        optuna.logging.set_verbosity(verbosity)


def experiment_runs(project: GeneratedProject) -> list[dict[str, Any]]:
    """Every run of the project's experiment, without artifacts (``with_artifacts`` adds them to the few
    runs a test compares)."""
    return run_summary(project.tracking_uri, PACKAGE, artifacts=False)["runs"]


def with_artifacts(project: GeneratedProject, run: dict[str, Any]) -> dict[str, Any]:
    from mlflow import MlflowClient

    return {**run, "artifacts": all_artifacts(MlflowClient(project.tracking_uri), run["id"])}


def sweep_runs(project: GeneratedProject, sweep: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The parent run of the last sweep named ``sweep`` and its children."""
    runs = experiment_runs(project)
    parents = [r for r in runs if r["tags"].get("kedro_mlflow.sweep") == sweep]
    assert len(parents) >= 1, [r["name"] for r in runs]
    parent = sorted(parents, key=lambda r: r["tags"]["kedro_mlflow.sweep.study"])[-1]
    children = [r for r in runs if r["tags"].get("mlflow.parentRunId") == parent["id"]]
    return parent, children


def study_trials(project: GeneratedProject, study_name: str) -> list[Any]:
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    storage = JournalStorage(JournalFileBackend(str(project.path / ".optuna/sweeps.journal")))
    return optuna.load_study(study_name=study_name, storage=storage).get_trials()


def trials_csv(project: GeneratedProject, parent_id: str) -> list[dict[str, str]]:
    from mlflow import MlflowClient

    client = MlflowClient(project.tracking_uri)
    local = client.download_artifacts(parent_id, "sweep/trials.csv", str(project.path / "data"))
    text = Path(local).read_text(encoding="utf-8")
    Path(local).unlink()
    return list(csv.DictReader(io.StringIO(text)))


def test_grid_sweep_is_a_parent_run_with_one_child_per_trial_each_a_plain_kedro_run(project) -> None:
    result = run_sweep(project, "c_grid")
    assert_ok(result, "kedro mlflow sweep c_grid")
    parent, children = sweep_runs(project, "c_grid")
    parent = with_artifacts(project, parent)
    assert parent["status"] == "FINISHED"
    assert sorted(c["params"]["model_options.C"] for c in children) == ["0.01", "0.1", "1.0", "10.0"]
    assert all(c["status"] == "FINISHED" for c in children)
    assert sorted(c["name"] for c in children) == [f"c_grid #{n}" for n in range(4)]
    # best.* is the child with the highest objective
    best = max(children, key=lambda c: (c["metrics"]["test.f1_macro"], -int(c["tags"]["kedro_mlflow.sweep.trial"])))
    assert parent["params"]["best.run_id"] == best["id"]
    assert parent["params"]["best.model_options.C"] == best["params"]["model_options.C"]
    assert parent["metrics"]["best.test.f1_macro"] == best["metrics"]["test.f1_macro"]
    assert parent["params"]["sweep.method"] == "grid"
    assert parent["params"]["sweep.space.model_options.C"] == "[0.01, 0.1, 1.0, 10.0]"
    assert parent["metrics"]["sweep.completed_trials"] == 4 and parent["metrics"]["sweep.failed_trials"] == 0
    assert {"sweep/trials.csv", "sweep/optimization_history.png", "sweep/slice.png"} <= set(parent["artifacts"])
    rows = trials_csv(project, parent["id"])
    assert sorted(r["run_id"] for r in rows) == sorted(c["id"] for c in children)
    assert {r["status"] for r in rows} == {"FINISHED"}
    by_run = {c["id"]: c for c in children}
    assert all(float(r["metrics.test.f1_macro"]) == by_run[r["run_id"]]["metrics"]["test.f1_macro"] for r in rows)
    assert "Top trials of c_grid" in result.stdout and parent["id"] in result.stdout
    assert parent["tags"]["kedro.command"] == "kedro mlflow sweep c_grid"
    started = result.stdout[result.stdout.index("Sweep 'c_grid' started"):].splitlines()[:2]
    assert started[1].startswith("4 trials, 1 worker(s), Optuna study") and max(map(len, started)) <= 80, started
    from mlflow import MlflowClient

    champion = MlflowClient(project.tracking_uri).get_model_version_by_alias(PACKAGE, "champion")
    assert champion.run_id == best["id"], "best_alias points at the best trial's registered pipeline model"
    assert parent["tags"]["best.model_alias.champion"] == f"{PACKAGE} v{champion.version}"

    # a child is what a plain `kedro run --params` with the trial's values logs
    child = with_artifacts(project, next(c for c in children if c["params"]["model_options.C"] == "0.1"))
    assert_ok(project.kedro_in_process("run", "--params", "model_options.C=0.1"), "plain kedro run")
    plain = with_artifacts(project, next(r for r in experiment_runs(project)
                                         if "mlflow.parentRunId" not in r["tags"] and "kedro_mlflow.sweep" not in r["tags"]))
    assert child["params"] == plain["params"]
    assert sorted(child["metrics"]) == sorted(plain["metrics"])
    assert {k: v for k, v in child["metrics"].items() if k.startswith("test.")} == \
           {k: v for k, v in plain["metrics"].items() if k.startswith("test.")}
    assert child["artifacts"] == plain["artifacts"]
    assert plain["tags"]["kedro.command"] == "kedro run --params=model_options.C=0.1"
    # Kedro's multi-run session records the default pipeline by name: the same command
    assert child["tags"]["kedro.command"] == "kedro run --pipelines=__default__ --params=model_options.C=0.1"
    client = MlflowClient(project.tracking_uri)

    def model_names(run: dict[str, Any]) -> list[str]:
        experiment_id = client.get_experiment_by_name(PACKAGE).experiment_id
        return sorted(m.name for m in client.search_logged_models(
            [experiment_id], filter_string=f"source_run_id = '{run['id']}'"))

    assert model_names(child) == model_names(plain) == ["iris_pipeline_model", "iris_sklearn_estimator"]


def test_optuna_sweep_with_two_workers_runs_exactly_its_trials(project) -> None:
    assert_ok(run_sweep(project, "c_search", "--trials", "4", "--jobs", "2"), "optuna sweep")
    parent, children = sweep_runs(project, "c_search")
    assert parent["status"] == "FINISHED" and len(children) == 4
    assert len({c["tags"]["kedro.pid"] for c in children}) == 2, "two worker processes ran the trials"
    trials = study_trials(project, parent["tags"]["kedro_mlflow.sweep.study"])
    assert [t.state.name for t in trials] == ["COMPLETE"] * 4
    assert sorted(t.user_attrs["kedro_mlflow.run_id"] for t in trials) == sorted(c["id"] for c in children)
    for trial in trials:  # each trial's sampled C is what its child run was given
        child = next(c for c in children if c["id"] == trial.user_attrs["kedro_mlflow.run_id"])
        assert float(child["params"]["model_options.C"]) == pytest.approx(trial.params["model_options.C"])
        assert 0.001 <= trial.params["model_options.C"] <= 10.0
    best = max(trials, key=lambda t: (t.value, -t.number))
    assert parent["params"]["best.trial"] == str(best.number)
    assert parent["metrics"]["best.test.accuracy"] == best.value
    assert parent["params"]["sweep.seed"] == "42"
    assert parent["tags"]["kedro.command"] == "kedro mlflow sweep c_search --trials=4 --jobs=2", "the command as run"


def test_parallel_trials_each_train_on_the_files_their_own_pipeline_wrote(project, tmp_path, monkeypatch) -> None:
    """Two workers split the data with their own test_size before either trains (the project's barrier
    hook): each trial's model is trained on its own split, and the project's data files are untouched."""
    import tempfile

    model_input = project.path / "data" / "05_model_input"
    before = {p.name: p.read_bytes() for p in model_input.iterdir()}
    temp = Path(tempfile.gettempdir())
    temp_before = {p.name for p in temp.iterdir() if p.name.startswith("kedro-mlflow-trial-")}
    monkeypatch.setenv("SWEEP_BARRIER", str(tmp_path))
    assert_ok(run_sweep(project, "split", "--jobs", "2"), "sweep split --jobs 2")
    parent, children = sweep_runs(project, "split")
    assert parent["status"] == "FINISHED" and [c["status"] for c in children] == ["FINISHED"] * 2
    assert len({c["tags"]["kedro.pid"] for c in children}) == 2, "the two trials ran at once, in two workers"
    rows = {c["params"]["split_options.test_size"]: c["metrics"]["rows.train_set"] for c in children}
    assert rows == {"0.2": 120, "0.6": 60}, "a trial trained on the train_set.csv of another trial"
    assert {p.name: p.read_bytes() for p in model_input.iterdir()} == before, "the trials wrote the project's files"
    assert {p.name for p in temp.iterdir() if p.name.startswith("kedro-mlflow-trial-")} == temp_before


def test_failed_trial_then_sigterm_then_resume_under_the_same_parent(project) -> None:
    """A failing trial is FAILED and the sweep goes on; SIGTERM kills the running trial and the
    parent; --resume completes the rest under the same parent, the failure counted once."""
    marker = project.path / "data" / "paused-trial"  # trial #2 (max_iter=300) hangs once it has trained
    process = subprocess.Popen([KEDRO, "mlflow", "sweep", "slow"], cwd=project.path,
                               env=kedro_env(project.home, {"SWEEP_PAUSE_MARKER": str(marker)}),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 240
        while not marker.exists():
            assert process.poll() is None, process.communicate()[0][-3000:]
            assert time.monotonic() < deadline, "the paused trial never started"
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, output[-3000:]
    assert "--resume" in output
    parent, children = sweep_runs(project, "slow")
    assert parent["status"] == "KILLED"
    statuses = sorted(c["status"] for c in children)
    assert "KILLED" in statuses and "RUNNING" not in statuses, statuses
    assert {c["params"]["model_options.max_iter"]: c["status"] for c in children}["-1"] == "FAILED"
    assert "trial #1 FAILED (model_options.max_iter=-1)" in output, output[-3000:]
    assert {c["params"]["model_options.max_iter"]: c["status"] for c in children}["300"] == "KILLED"
    finished_before = {c["id"] for c in children if c["status"] == "FINISHED"}
    marker.unlink()

    result = run_sweep(project, "slow", "--resume")
    assert_ok(result, "resume")
    resumed, children = sweep_runs(project, "slow")
    assert resumed["id"] == parent["id"] and resumed["status"] == "FINISHED"
    finished = [c for c in children if c["status"] == "FINISHED"]
    assert finished_before <= {c["id"] for c in finished}, "completed trials are kept"
    assert sorted(int(c["params"]["model_options.max_iter"]) for c in finished) == [200, 300, 500]
    assert sorted(c["status"] for c in children if c["status"] != "FINISHED")[0] == "FAILED"
    assert {c["status"] for c in children} == {"FINISHED", "FAILED", "KILLED"}
    assert resumed["metrics"]["sweep.completed_trials"] == 3 and resumed["metrics"]["sweep.failed_trials"] == 1
    assert resumed["metrics"]["sweep.killed_trials"] >= 1
    rows = trials_csv(project, resumed["id"])
    assert sorted(r["status"] for r in rows).count("FINISHED") == 3 and "FAILED" in {r["status"] for r in rows}
    assert "resumed" in result.stdout


@pytest.mark.parametrize(("sweeps", "message"), [
    ({"s": {"objective": {"metric": "test.accuracy"}, "params": {"model_options.gamma": [1, 2]}}},
     "s.params.model_options.gamma: the project has no parameter 'model_options.gamma' (under 'model_options' the "
     "parameters are: C, max_iter)"),
    ({"s": {"objective": {"metric": "train.loss"}, "params": {"model_options.C": [1.0]}}},
     "s.objective.metric: no metric dataset of pipeline '__default__' logs 'train.loss'. Its metrics: test.<key> "
     "(dataset metrics)"),
])
def test_an_invalid_sweep_fails_before_any_trial_naming_file_and_key(project, sweeps, message, kedro_mlflow) -> None:
    (project.path / "conf/local/sweeps_invalid.yml").write_text(yaml.safe_dump(sweeps), encoding="utf-8")
    try:
        before = len(experiment_runs(project))
        result = kedro_mlflow(project, "sweep", "s")
    finally:
        (project.path / "conf/local/sweeps_invalid.yml").unlink()
    assert result.exit_code != 0
    assert f"conf/local/sweeps_invalid.yml: {message}" in " ".join(result.stderr.split()), result.stderr
    assert len(experiment_runs(project)) == before, "no run was opened"


@pytest.mark.parametrize(("body", "message"), [
    ({"method": "grid", "params": {"a.b": []}}, "x.yml: s.params.a.b: the list of values is empty"),
    ({"params": {"a.b": {"distribution": "normal", "mu": 0}}},
     "x.yml: s.params.a.b: unknown key(s) distribution, mu: Optuna has no such distribution. Allowed keys: low, "
     "high, log, step (a range) or choices (a list)"),
    ({"method": "grid", "params": {"a.b": {"low": 0.1, "high": 1.0}}},
     "x.yml: s.params.a.b: a grid needs a finite set of values, and float 0.1..1 is a continuous range"),
    ({"method": "bayes", "params": {"a": [1]}}, "s.method = 'bayes': allowed methods are grid, random, optuna"),
    ({"params": {"a": [1]}, "trails": 3}, "unknown key 's.trails'. Allowed keys here: pipeline, objective, method"),
    ({"params": {"a": [1]}, "best_alias": "not an alias"}, "s.best_alias = 'not an alias' is invalid"),
])
def test_declaration_errors_name_the_file_the_key_and_what_is_allowed(tmp_path, body, message) -> None:
    path = tmp_path / "x.yml"
    raw = {"s": {"objective": {"metric": "m"}, **body}}
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    with pytest.raises(SweepConfigError) as error:
        parse_sweeps(raw, [path])
    assert message in str(error.value).replace(str(tmp_path) + "/", "")


def test_grid_points_and_trial_counts() -> None:
    sweep = parse_sweeps({"s": {"objective": {"metric": "m"}, "method": "grid", "trials": 100,
                                "params": {"a": [1, 2], "b": {"low": 0, "high": 10, "step": 5}}}})["s"]
    assert sweep.grid_points() == [{"a": 1, "b": 0}, {"a": 1, "b": 5}, {"a": 1, "b": 10},
                                   {"a": 2, "b": 0}, {"a": 2, "b": 5}, {"a": 2, "b": 10}]
    assert sweep.trial_count() == 6 and sweep.trial_count(4) == 4
    assert sweep.spaces["b"].integer


def test_workers_claim_only_queued_trials_and_resume_requeues_the_killed_ones() -> None:
    import optuna

    from kedro_mlflow_starter.tracking.sweep import STATUS_ATTR, claim_trial, requeue, suggest, trial_counts

    storage = optuna.storages.InMemoryStorage()
    sweep = parse_sweeps({"s": {"objective": {"metric": "m"}, "method": "grid", "params": {"a": [1, 2, 3]}}})["s"]
    study = optuna.create_study(storage=storage, study_name="exp:s#1", direction="maximize")
    assert requeue(storage, study, sweep, 3) == 3
    first, second, third = (claim_trial(storage, study, sweep) for _ in range(3))
    assert [suggest(t, sweep)["a"] for t in (first, second, third)] == [1, 2, 3]
    assert claim_trial(storage, study, sweep) is None, "an empty queue makes no trial beyond the budget"
    study.tell(first, 0.5)
    third.set_user_attr(STATUS_ATTR, "FAILED")
    study.tell(third, state=optuna.trial.TrialState.FAIL)
    # the sweep is killed while `second` runs; --resume marks it KILLED and queues its grid point again
    assert requeue(storage, study, sweep, 3) == 1
    assert trial_counts(study) == {"completed": 1, "failed": 1, "killed": 1, "waiting": 1, "running": 0}
    again = claim_trial(storage, study, sweep)
    assert suggest(again, sweep) == {"a": 2}
    study.tell(again, 0.9)
    assert requeue(storage, study, sweep, 3) == 0 and len(study.trials) == 4
