"""A run's records belong to that run (issue 17, items 1-5).

The starter project, with a project hook (``interleave.py``) that lets a test put two runs'
steps in a known order: the first run waits right after saving its classifier until the
second run has overwritten ``data/06_models/classifier.pkl`` with its own. Each run's
pipeline model must still hold the classifier that run trained (its own
``iris_sklearn_estimator``), whether the runs are plain ``kedro run``s on one SQLite store or
on a PostgreSQL-backed ``mlflow server``, or two open group runs; a group run closed in a
folder without the tasks' ``data/`` gets the right model too. A task handed a closed run
refuses it; a group run whose close never came is found by ``stale-runs``; a retried task
leaves one model and one metric point; Ctrl-C or SIGTERM during a model save leaves no
PENDING model and nothing in the temp folder.
"""

from __future__ import annotations

import importlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.orchestrated_fixtures import close_run, new_iris_project, open_run, set_tracking_uri
from tests.project_factory import start_kedro_in_fork
from tests.starter_fixtures import KEDRO, PACKAGE, GeneratedProject, assert_ok, kedro_env
from tests.tracking_helpers import logged_models_of_run

if TYPE_CHECKING:
    from tests.server_fixtures import MlflowServer

INTERLEAVE = '''"""Test-only project hooks: order two runs' steps, fail a node, slow down a model save."""

import os
import time
from pathlib import Path

from kedro.framework.hooks import hook_impl


def _wait_for(path: Path) -> None:
    deadline = time.time() + 180
    while not path.exists():
        if time.time() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.05)


class SlowToPickle:
    """Pickling it (a model save) writes SLOW_SAVE_MARKER, then hangs: the test interrupts it."""

    def __reduce__(self):
        Path(os.environ["SLOW_SAVE_MARKER"]).write_text(str(os.getpid()))
        time.sleep(120)
        return (SlowToPickle, ())


class Interleave:
    """INTERLEAVE_DIR + INTERLEAVE_ROLE=first|second: both runs are open at once; the second runs
    its nodes once the first's nodes all ran (the project's data files are shared: a node of one
    must not read a file the other is writing), and the first, before its pipeline model is
    logged, waits until the second has saved its classifier over the first's. FAIL_NODE=<node>
    raises after that node ran. SLOW_SAVE_MARKER: the sklearn model's save hangs."""

    def __init__(self):
        self._left = None

    def _marker(self, name):
        return Path(os.environ["INTERLEAVE_DIR"], name)

    @hook_impl
    def before_pipeline_run(self, pipeline):
        self._left = len(pipeline.nodes)
        if os.environ.get("INTERLEAVE_ROLE") == "second":
            _wait_for(self._marker("first.nodes_done"))

    @hook_impl
    def before_dataset_saved(self, dataset_name, data):
        if dataset_name == "sklearn_model" and os.environ.get("SLOW_SAVE_MARKER"):
            data.slow_to_pickle = SlowToPickle()

    @hook_impl
    def after_dataset_saved(self, dataset_name):
        if dataset_name == "classifier" and os.environ.get("INTERLEAVE_ROLE") == "second":
            self._marker("second.classifier_saved").write_text("")

    @hook_impl
    def after_node_run(self, node):
        if os.environ.get("FAIL_NODE") == node.name:
            raise RuntimeError(f"{node.name} failed on purpose")
        self._left -= 1
        if self._left == 0 and os.environ.get("INTERLEAVE_ROLE") == "first":
            self._marker("first.nodes_done").write_text("")
            _wait_for(self._marker("second.classifier_saved"))
'''


def add_interleave_hooks(project: GeneratedProject) -> None:
    src = project.path / "src" / PACKAGE
    (src / "interleave.py").write_text(INTERLEAVE, encoding="utf-8")
    with open(src / "settings.py", "a", encoding="utf-8") as settings:
        settings.write("\nfrom .interleave import Interleave\n\nHOOKS = (Interleave(),)\n")


@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory, generated_tree: dict[str, bytes]) -> GeneratedProject:
    root = tmp_path_factory.mktemp("isolation")
    project = new_iris_project(root / "work", root / "home", generated_tree)
    add_interleave_hooks(project)
    return project


def client_of(uri: str) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(uri, uri if uri.startswith("sqlite") else None)


def models_of(client: Any, run_id: str, name: str | None = None) -> list[Any]:
    return [model for model in logged_models_of_run(client, run_id) if name is None or model.name == name]


def downloaded_model(client: Any, run_id: str, name: str, into: Path) -> str:
    """The local folder of the run's logged model ``name`` (read from the run's own store)."""
    import mlflow

    (model,) = models_of(client, run_id, name)
    return mlflow.artifacts.download_artifacts(artifact_uri=model.artifact_location, dst_path=str(into),
                                               tracking_uri=client.tracking_uri)


def classifier_of_pipeline_model(client: Any, run_id: str, into: Path) -> Any:
    """The classifier packed inside the run's pipeline model, loaded as MLflow serves it."""
    import mlflow

    loaded = mlflow.pyfunc.load_model(downloaded_model(client, run_id, "iris_pipeline_model", into))
    return loaded.unwrap_python_model()._ensure_state().base["classifier"]


def own_classifier(client: Any, run_id: str, into: Path) -> Any:
    """The classifier of the run's own ``iris_sklearn_estimator`` (the preprocessor + classifier bundle)."""
    import mlflow

    return mlflow.sklearn.load_model(downloaded_model(client, run_id, "iris_sklearn_estimator", into))[-1]


def assert_same_classifier(packed: Any, own: Any, run_id: str) -> None:
    assert packed.C == own.C, f"run {run_id}: the pipeline model holds C={packed.C}, its own estimator C={own.C}"
    assert packed.coef_.tolist() == own.coef_.tolist(), f"run {run_id}: another run's classifier"


def run_id_of(client: Any, c_value: float, experiment_name: str = PACKAGE) -> str:
    experiment = client.get_experiment_by_name(experiment_name)
    runs = client.search_runs([experiment.experiment_id], filter_string=f"params.`model_options.C` = '{c_value}'")
    assert len(runs) == 1, [r.info.run_id for r in runs]
    return runs[0].info.run_id


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_two_runs_at_once_each_log_a_pipeline_model_of_their_own(
        iris: GeneratedProject, store: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """The first run logs its model after the second overwrote data/06_models/classifier.pkl
    (its nodes all ran before: the file was theirs while they read it)."""
    project, experiment = iris, PACKAGE
    if store == "postgres":
        server: MlflowServer = request.getfixturevalue("pg_mlflow_server")
        # the session's server is shared: the fan-out's group run must stay the only run of its experiment
        uri, experiment = server.uri, "two_runs_at_once"
        mlflow_yml = project.path / "conf" / "base" / "mlflow.yml"
        saved = mlflow_yml.read_text(encoding="utf-8")
        set_tracking_uri(project, uri, experiment)
        request.addfinalizer(lambda: mlflow_yml.write_text(saved, encoding="utf-8"))
    else:
        uri = project.tracking_uri
    markers = tmp_path / "markers"
    markers.mkdir()
    # Two processes at once, forked from this one (a new interpreter's imports are not the point;
    # what the starter's nodes import is imported once, here, for both).
    for module in ("matplotlib.figure", "sklearn.linear_model", "sklearn.metrics", "sklearn.model_selection"):
        importlib.import_module(module)
    first = start_kedro_in_fork("run", "--params", "model_options.C=0.05", cwd=project.path,
                                log=tmp_path / "first.log", env={"INTERLEAVE_DIR": str(markers),
                                                                 "INTERLEAVE_ROLE": "first"})
    second = start_kedro_in_fork("run", "--params", "model_options.C=50.0", cwd=project.path,
                                 log=tmp_path / "second.log", env={"INTERLEAVE_DIR": str(markers),
                                                                   "INTERLEAVE_ROLE": "second"})
    for process, what in ((first, "the first run"), (second, "the second run")):
        result = process.wait(timeout=300)
        assert result.returncode == 0, f"{what} ended {result.returncode}:\n{result.stdout[-4000:]}"

    client = client_of(uri)
    for c_value in (0.05, 50.0):
        run_id = run_id_of(client, c_value, experiment)
        assert client.get_run(run_id).info.status == "FINISHED"
        packed = classifier_of_pipeline_model(client, run_id, tmp_path / f"pipeline-{c_value}")
        assert packed.C == c_value
        assert_same_classifier(packed, own_classifier(client, run_id, tmp_path / f"own-{c_value}"), run_id)


TASKS = ("split_data,fit_preprocessor,train_model", "evaluate_model,report,bundle_model")  # two tasks per group run


def run_task(project: GeneratedProject, run_id: str, nodes: str, log: Path, *args: str,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """One orchestrator task: ``kedro run --nodes <nodes>`` with MLFLOW_RUN_ID set (in the test
    process: the tasks run one after the other, what a task leaves is in the store)."""
    result = project.kedro_in_process("run", "--nodes", nodes, *args, env={"MLFLOW_RUN_ID": run_id, **(env or {})})
    log.write_text(result.stdout + result.stderr, encoding="utf-8")
    return result


def test_two_group_runs_closed_late_in_another_folder_log_their_own_models(
        iris: GeneratedProject, tmp_path: Path) -> None:
    """Group run A runs its tasks, then group run B (overwriting data/06_models), then both
    close, from a copy of the project that has no data/ at all (another machine)."""
    project = iris
    runs = {}
    for c_value in (0.05, 50.0):
        params = f"model_options.C={c_value}"
        runs[c_value] = run_id = open_run(project, "--params", params)
        for nodes in TASKS:
            result = run_task(project, run_id, nodes, tmp_path / f"{c_value}-{nodes}.log", "--params", params)
            assert_ok(result, f"task {nodes} of group run C={c_value}")
    elsewhere = tmp_path / "close-host" / project.path.name
    shutil.copytree(project.path, elsewhere, ignore=shutil.ignore_patterns("data", "mlartifacts", "mlflow.db"))
    uri = project.tracking_uri
    set_tracking_uri(GeneratedProject(elsewhere, project.home), uri)
    client = client_of(uri)
    for c_value, run_id in runs.items():
        closed = project.kedro_in_process("mlflow", "run", "close", "--run-id", run_id, cwd=elsewhere)
        assert_ok(closed, "kedro mlflow run close in another folder")
        assert client.get_run(run_id).info.status == "FINISHED", closed.stdout
        assert not (elsewhere / "data" / "06_models").exists(), "close wrote into the project's data folder"
        packed = classifier_of_pipeline_model(client, run_id, tmp_path / f"pipeline-{c_value}")
        assert packed.C == c_value
        assert_same_classifier(packed, own_classifier(client, run_id, tmp_path / f"own-{c_value}"), run_id)


def test_a_task_handed_a_closed_run_refuses_it_before_any_node_runs(iris: GeneratedProject, tmp_path: Path) -> None:
    project = iris
    client = client_of(project.tracking_uri)
    run_id = open_run(project)
    client.set_terminated(run_id, status="FINISHED")
    split = project.path / "data" / "05_model_input" / "train_set.csv"
    before = split.stat().st_mtime_ns if split.exists() else None
    result = run_task(project, run_id, "split_data", tmp_path / "task.log")
    assert result.returncode != 0
    message = result.stdout + result.stderr
    assert f"MLflow run {run_id}" in message and "is FINISHED" in message, message[-3000:]
    assert "unset it to log a new run" in message and "kedro mlflow run open" in message
    assert client.get_run(run_id).info.status == "FINISHED", "the closed run was reopened"
    assert (split.stat().st_mtime_ns if split.exists() else None) == before, "a node ran"


def test_stale_runs_finds_a_group_run_whose_close_never_came(iris: GeneratedProject, tmp_path: Path) -> None:
    project = iris
    client = client_of(project.tracking_uri)
    run_id = open_run(project)
    assert_ok(run_task(project, run_id, "split_data", tmp_path / "task.log"), "a task")
    assert client.get_run(run_id).data.tags["kedro.heartbeat"].isdigit()
    fresh = project.kedro_in_process("mlflow", "stale-runs")
    assert_ok(fresh, "stale-runs")
    assert run_id not in fresh.stdout, "a group run whose task was just alive is not stale"
    idle = project.kedro_in_process("mlflow", "stale-runs", "--idle-minutes", "0", "--mark-killed")
    assert_ok(idle, "stale-runs --idle-minutes 0 --mark-killed")
    assert run_id in idle.stdout and "group run: no task alive" in idle.stdout, idle.stdout
    assert client.get_run(run_id).info.status == "KILLED"


def test_a_retried_task_leaves_one_model_one_metric_point_and_its_attempt_count(
        iris: GeneratedProject, tmp_path: Path) -> None:
    project = iris
    client = client_of(project.tracking_uri)
    run_id = open_run(project)
    first, second = TASKS
    assert_ok(run_task(project, run_id, first, tmp_path / "first.log"), "the first task")
    failed = run_task(project, run_id, second, tmp_path / "second-1.log", env={"FAIL_NODE": "report"})
    assert failed.returncode != 0
    tags = client.get_run(run_id).data.tags
    (tag,) = [key for key in tags if key.startswith("kedro.task.") and "report" in key]
    assert tags[tag].startswith("FAILED: RuntimeError: report failed on purpose"), tags[tag]
    # the failed attempt got as far as logging the model and the metrics (bundle_model and
    # evaluate_model run before report)
    assert len(models_of(client, run_id, "iris_sklearn_estimator")) == 1
    assert len(client.get_metric_history(run_id, "test.accuracy")) == 1

    assert_ok(run_task(project, run_id, second, tmp_path / "second-2.log"), "the retried task")
    run = client.get_run(run_id)
    assert run.data.tags[tag] == "FINISHED after 2 attempts"
    models = models_of(client, run_id, "iris_sklearn_estimator")
    assert [str(model.status).rpartition(".")[2] for model in models] == ["READY"], models
    assert [(p.step, p.value) for p in client.get_metric_history(run_id, "test.accuracy")] == [
        (0, run.data.metrics["test.accuracy"])]
    closed = close_run(project, run_id)
    assert client.get_run(run_id).info.status == "FINISHED", closed.stdout


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # a background job of a non-interactive shell ignores it


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_an_interrupted_model_save_leaves_no_pending_model_and_no_temp_files(
        iris: GeneratedProject, tmp_path: Path, signum: int) -> None:
    project = iris
    client = client_of(project.tracking_uri)
    marker, temp = tmp_path / "saving", tmp_path / "tmp"
    temp.mkdir()
    env = kedro_env(project.home, {"SLOW_SAVE_MARKER": str(marker), "TMPDIR": str(temp)})
    with open(tmp_path / "run.log", "w", encoding="utf-8") as out:
        process = subprocess.Popen([KEDRO, "run", "--params", "model_options.C=7.5"], cwd=project.path, env=env,
                                   stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
                                   preexec_fn=_default_sigint)
    deadline = time.time() + 240
    while not marker.exists():
        assert process.poll() is None, (tmp_path / "run.log").read_text(encoding="utf-8")[-3000:]
        assert time.time() < deadline, "the model save never started"
        time.sleep(0.1)
    os.kill(process.pid, signum)
    assert process.wait(timeout=120) != 0
    run_id = run_id_of(client, 7.5)
    assert client.get_run(run_id).info.status == "KILLED"
    statuses = [str(model.status).rpartition(".")[2] for model in models_of(client, run_id, "iris_sklearn_estimator")]
    assert "PENDING" not in statuses, statuses
    assert sorted(path.name for path in temp.iterdir()) == [], "files left in the temp folder"
    client.delete_run(run_id)  # run_id_of finds one run per C value in this module
