"""MLflow's switches from mlflow.yml, end to end in generated projects: what lands in MLflow.

``tracking.autolog`` under SequentialRunner, ThreadRunner and ParallelRunner (spawn and fork
workers); ``tracking.system_metrics``. The runs are in the test process (spawned workers are
fresh interpreters all the same; forked ones come after an autologged run of the same process, as
in a notebook); marked slow: each is a whole ``kedro run``.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.project_factory import KedroProject, make_project
from tests.tracking_helpers import client_for, output

FIT_NODES = '''
import pandas as pd
from sklearn.linear_model import LinearRegression
from sklearn.tree import DecisionTreeRegressor


def fit_linear(df: pd.DataFrame):
    return LinearRegression().fit(df[["a"]], df["b"])


def fit_tree(df: pd.DataFrame):
    return DecisionTreeRegressor(max_depth=2, random_state=0).fit(df[["a"]], df["b"])


def score(linear, tree, df: pd.DataFrame) -> float:
    return float(linear.score(df[["a"]], df["b"]) + tree.score(df[["a"]], df["b"]))
'''

FIT_REGISTRY = '''
from kedro.pipeline import Pipeline, node


def register_pipelines():
    from {package}.nodes import fit_linear, fit_tree, score

    return {{"__default__": Pipeline([
        node(fit_linear, "raw", "linear", name="fit_linear"),
        node(fit_tree, "raw", "tree", name="fit_tree"),
        node(score, ["linear", "tree", "raw"], "total_score", name="score"),
    ])}}
'''

CATALOG = {
    "raw": {"type": "pandas.CSVDataset", "filepath": "data/01_raw/raw.csv"},
    "linear": {"type": "kedro_mlflow_starter.io.MlflowModelTrackingDataset", "flavor": "mlflow.sklearn"},
    "total_score": {"type": "kedro_mlflow_starter.io.MlflowMetricDataset"},
}


def all_runs(project: KedroProject) -> list:
    client = client_for(project)
    return client.search_runs([e.experiment_id for e in client.search_experiments()], max_results=1000)


@pytest.fixture(scope="module")
def autolog_project(tmp_path_factory: pytest.TempPathFactory, migrated_db: Path) -> KedroProject:
    import shutil

    project = make_project(tmp_path_factory.mktemp("autolog"), package="autolog_project", nodes=FIT_NODES,
                           registry=FIT_REGISTRY, parameters={}, catalog=CATALOG, raw_rows=20,
                           mlflow_yml={"tracking": {"autolog": {"enabled": True}}})
    shutil.copy(migrated_db, project.db)
    return project


@pytest.mark.slow
@pytest.mark.parametrize(("runner", "mp_context"),
                         [("SequentialRunner", None), ("ThreadRunner", None), ("ParallelRunner", "spawn"),
                          ("ParallelRunner", "fork")])
def test_autolog_lands_in_the_kedro_run_under_every_runner(autolog_project, runner, mp_context) -> None:
    env = {"KEDRO_MP_CONTEXT": mp_context} if mp_context else {}
    if mp_context == "fork":
        # The notebook case: an autologged run in this process first, whose fits start MLflow's autologging
        # thread pools; the forked workers of the next run inherit them (without their threads, they hung).
        assert autolog_project.run_in_process("run").returncode == 0
    before = {run.info.run_id for run in all_runs(autolog_project)}

    with _fails_after(seconds=240):  # in the test process; spawned workers are fresh interpreters all the same
        result = autolog_project.run_in_process("run", "--runner", runner, env=env)

    assert result.returncode == 0, output(result)
    new = [run for run in all_runs(autolog_project) if run.info.run_id not in before]
    assert len(new) == 1, f"autologging opened runs of its own: {[r.info.run_name for r in new]}\n{output(result)}"
    (run,) = new
    assert run.info.status == "FINISHED"
    if runner == "ThreadRunner":
        # MLflow's autologging session is process-wide: of two fits overlapping in two threads only
        # the first is autologged, and the run's start says so.
        assert "only the first is autologged" in output(result)
        assert "fit_intercept" in run.data.params or "max_depth" in run.data.params
    else:
        # both fits were autologged into the Kedro run, whatever process ran them
        assert run.data.params["fit_intercept"] == "True"  # LinearRegression
        assert run.data.params["max_depth"] == "2"  # DecisionTreeRegressor
    assert "training_r2_score" in run.data.metrics
    assert "total_score" in run.data.metrics
    # log_models is off by default: the catalog's model dataset logs the only model
    client = client_for(autolog_project)
    models = client.search_logged_models([run.info.experiment_id], filter_string=f"source_run_id = '{run.info.run_id}'")
    assert [model.name for model in models] == ["linear"]


@pytest.mark.slow
def test_autolog_log_models_true_adds_autologgings_own_models(autolog_project) -> None:
    autolog_project.write_yaml("conf/local/mlflow.yml", {"tracking": {"autolog": {"enabled": True, "log_models": True}}})
    try:
        result = autolog_project.run_in_process("run")
    finally:
        (autolog_project.path / "conf/local/mlflow.yml").unlink()
    assert result.returncode == 0, output(result)
    run = max(all_runs(autolog_project), key=lambda r: r.info.start_time)
    client = client_for(autolog_project)
    models = client.search_logged_models([run.info.experiment_id], filter_string=f"source_run_id = '{run.info.run_id}'")
    assert sorted(model.name for model in models) == ["linear", "model", "model"]  # ours + one per fit


@pytest.mark.slow
def test_autolog_off_by_default_logs_no_fit(tmp_path: Path, migrated_db: Path) -> None:
    import shutil

    project = make_project(tmp_path, package="plain_project", nodes=FIT_NODES, registry=FIT_REGISTRY, parameters={},
                           catalog=CATALOG, raw_rows=20)
    shutil.copy(migrated_db, project.db)
    result = project.run_in_process("run")
    assert result.returncode == 0, output(result)
    (run,) = all_runs(project)
    assert "fit_intercept" not in run.data.params and "training_r2_score" not in run.data.metrics


SLEEPY_NODES = '''
import time

import pandas as pd


def double(df: pd.DataFrame, factor: float) -> pd.DataFrame:
    time.sleep(1.5)
    return df * factor


def total(df: pd.DataFrame, model_options: dict) -> float:
    return float(df.to_numpy().sum()) + model_options["bias"]
'''


@pytest.mark.slow
def test_system_metrics_are_logged_into_the_run(tmp_path: Path, migrated_db: Path) -> None:
    import shutil

    project = make_project(tmp_path, nodes=SLEEPY_NODES, mlflow_yml={
        "tracking": {"system_metrics": {"enabled": True, "sampling_interval": 0.5}}})
    shutil.copy(migrated_db, project.db)

    result = project.run_in_process("run")

    assert result.returncode == 0, output(result)
    client = client_for(project)
    (run,) = all_runs(project)
    assert run.info.status == "FINISHED"
    for key in ("system/cpu_utilization_percentage", "system/system_memory_usage_megabytes",
                "system/disk_usage_percentage", "system/network_receive_megabytes"):
        assert key in run.data.metrics, sorted(run.data.metrics)
    history = client.get_metric_history(run.info.run_id, "system/cpu_utilization_percentage")
    assert len(history) >= 2, "sampled every 0.5 s during a pipeline of more than 1.5 s"
    assert [point.step for point in history] == list(range(len(history)))


def test_system_metrics_without_psutil_fail_before_the_run_naming_the_key(monkeypatch) -> None:
    import importlib.util

    from kedro_mlflow_starter.config.mlflow_config import TrackingConfig
    from kedro_mlflow_starter.errors import MlflowConfigError
    from kedro_mlflow_starter.tracking.switches import check_switches

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "psutil" else real_find_spec(name, *args))
    with pytest.raises(MlflowConfigError, match=r"tracking.system_metrics.enabled.*pip install psutil"):
        check_switches(TrackingConfig(system_metrics={"enabled": True}))
    check_switches(TrackingConfig())  # off: nothing is needed


@contextlib.contextmanager
def _fails_after(seconds: int) -> Iterator[None]:
    """A run that hangs fails the test (TimeoutError in the main thread) instead of the whole suite."""
    def expire(signum: int, frame: object) -> None:
        raise TimeoutError(f"the run did not end within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
