"""kedro-mlflow's own behaviour that its users' code relies on (issue 20, section 2).

Each test is one behaviour a migrating user's code depends on, found by running
kedro-mlflow's public test suite against this package; each failed before it was matched.
The fluent active run in the project's own hooks is tested with a generated project in
``tests/tracking/test_mlflow_switches.py`` (it needs a real ``kedro run``).
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import node, pipeline
from kedro_datasets.pickle import PickleDataset

from kedro_mlflow_starter import KedroPipelineModel
from kedro_mlflow_starter.errors import KedroPipelineModelError
from kedro_mlflow_starter.io import MlflowMetricDataset
from tests.io_fixtures import Run
from tests.project_factory import kedro_process_state
from tests.tracking_helpers import only_run, output, runs_of


def scale(instances: pd.DataFrame, scaler: dict) -> pd.DataFrame:
    return instances - pd.Series(scaler)


def predict(scaled: pd.DataFrame, threshold: float) -> pd.Series:
    return (scaled["a"] > threshold).astype(int).rename("label")


INFERENCE = pipeline([
    node(scale, ["instances", "scaler"], "scaled", name="scale"),
    node(predict, ["scaled", "params:threshold"], "label", name="predict"),
])
FRAME = pd.DataFrame({"a": [0.0, 1.5, 3.0]})


@pytest.fixture
def catalog(tmp_path: Path) -> DataCatalog:
    scaler = PickleDataset(filepath=(tmp_path / "data/06_models/scaler.pkl").as_posix())
    scaler.save({"a": 0.5})
    return DataCatalog({"scaler": scaler, "instances": MemoryDataset(), "params:threshold": MemoryDataset(0.0)})


def test_metric_load_returns_the_value_logged_last_not_the_highest_step(run: Run) -> None:
    MlflowMetricDataset(key="score", save_args={"step": 5}).save(0.1)
    time.sleep(0.01)  # two saves of a node are never within the same millisecond in practice
    MlflowMetricDataset(key="score", save_args={"step": 2}).save(0.7)

    assert MlflowMetricDataset(key="score").load() == 0.7
    assert MlflowMetricDataset(key="score", load_args={"step": 5}).load() == 0.1


def test_a_hand_built_artifacts_mapping_loads_and_predicts(run: Run, catalog: DataCatalog) -> None:
    import mlflow

    model = KedroPipelineModel(INFERENCE, catalog, input_name="instances")
    scaler_file = catalog["scaler"]._filepath  # the dataset's own file, as kedro-mlflow's docs log it
    with mlflow.start_run(run_id=run.run_id):
        info = mlflow.pyfunc.log_model(name="model", python_model=model, artifacts={"scaler": str(scaler_file)},
                                       pip_requirements=["pandas"])
    loaded = mlflow.pyfunc.load_model(info.model_uri)

    assert list(loaded.predict(FRAME)) == [0, 1, 1]


def test_extract_pipeline_artifacts_accepts_a_temporary_directory(catalog: DataCatalog, tmp_path: Path) -> None:
    folder = tempfile.TemporaryDirectory(dir=tmp_path)
    model = KedroPipelineModel(INFERENCE, catalog, input_name="instances")

    mapping = model.extract_pipeline_artifacts(folder)

    assert Path(mapping["scaler"]).parent == Path(folder.name)
    assert any(Path(mapping["scaler"]).iterdir())
    folder.cleanup()


def test_params_are_frozen_when_the_artifacts_are_extracted(catalog: DataCatalog, tmp_path: Path) -> None:
    from types import SimpleNamespace

    model = KedroPipelineModel(INFERENCE, catalog, input_name="instances")
    catalog["params:threshold"] = MemoryDataset(1.0)  # the catalog changed after the model was built

    mapping = model.extract_pipeline_artifacts(tmp_path / "artifacts")
    model.load_context(SimpleNamespace(artifacts=mapping))

    assert list(model.predict(None, FRAME)) == [0, 0, 1]
    assert model.param_values == {"params:threshold": 1.0}


def test_an_unpersisted_inference_input_raises_kedro_pipeline_model_error(catalog: DataCatalog) -> None:
    catalog["scaler"] = MemoryDataset()  # never saved: nothing to put in the model

    with pytest.raises(KedroPipelineModelError, match="'scaler', which is a MemoryDataset with no data"):
        KedroPipelineModel(INFERENCE, catalog, input_name="instances")


# -- mlflow.active_run() in the project's own hooks -------------------------------------------

RECORDING_HOOKS = '''
import json
from pathlib import Path

import mlflow
from kedro.framework.hooks import hook_impl

SEEN = Path(__file__).resolve().parents[2] / "active_runs.jsonl"


def _record(hook, **extra):
    active = mlflow.active_run()
    with SEEN.open("a") as stream:
        stream.write(json.dumps({"hook": hook, "run_id": active.info.run_id if active else None, **extra}) + "\\n")


class RecordActiveRun:
    @hook_impl
    def before_pipeline_run(self, run_params):
        _record("before_pipeline_run")

    @hook_impl
    def after_node_run(self, node):
        _record("after_node_run")

    @hook_impl
    def after_pipeline_run(self, run_params):
        _record("after_pipeline_run")
        mlflow.log_metric("logged_by_project_hook", 1.0)  # the run is still open here
        if (run_params.get("runtime_params") or {}).get("fail_hook"):
            raise RuntimeError("the project's after_pipeline_run failed")

    @hook_impl
    def on_pipeline_error(self, error):
        _record("on_pipeline_error")
        mlflow.set_tag("failure_seen_by", "project hook")
'''

FAILING_NODES = '''
import pandas as pd


def double(df: pd.DataFrame, factor: float) -> pd.DataFrame:
    if factor < 0:
        raise ValueError("negative factor")
    return df * factor


def total(df: pd.DataFrame, model_options: dict) -> float:
    return float(df.to_numpy().sum()) + model_options["bias"]
'''


def _seen(project) -> list[dict]:
    path = project.path / "active_runs.jsonl"
    seen = [json.loads(line) for line in path.read_text().splitlines()]
    path.unlink()
    return seen


def test_the_kedro_run_is_the_active_run_in_the_projects_own_hooks(project) -> None:
    project.write(f"src/{project.package}/nodes.py", FAILING_NODES)
    project.write(f"src/{project.package}/hooks.py", RECORDING_HOOKS)
    project.write(f"src/{project.package}/settings.py", "from .hooks import RecordActiveRun\n\nHOOKS = (RecordActiveRun(),)\n")

    result = project.run_in_process("run")
    assert result.returncode == 0, output(result)
    run = only_run(project)
    seen = _seen(project)
    assert [entry["hook"] for entry in seen] == ["before_pipeline_run", "after_node_run", "after_node_run",
                                                 "after_pipeline_run"]
    assert {entry["run_id"] for entry in seen} == {run.info.run_id}
    assert run.data.metrics["logged_by_project_hook"] == 1.0
    assert run.info.status == "FINISHED"

    failed = project.run_in_process("run", "--params", "factor=-1")
    assert failed.returncode != 0
    failed_run = next(r for r in runs_of(project) if r.info.run_id != run.info.run_id)
    seen = _seen(project)
    assert [entry["hook"] for entry in seen] == ["before_pipeline_run", "on_pipeline_error"]
    assert {entry["run_id"] for entry in seen} == {failed_run.info.run_id}
    assert failed_run.info.status == "FAILED"  # ours, not the FINISHED the fluent API would write
    assert failed_run.data.tags["failure_seen_by"] == "project hook"

    hook_failed = project.run_in_process("run", "--params", "fail_hook=1")
    assert hook_failed.returncode != 0 and "the project's after_pipeline_run failed" in output(hook_failed)
    (hook_failed_run,) = [r for r in runs_of(project) if r.info.run_id not in (run.info.run_id, failed_run.info.run_id)]
    assert [entry["hook"] for entry in _seen(project)][-1] == "after_pipeline_run"
    assert hook_failed_run.info.status == "FAILED"  # the project's hook failed after ours could have finished it
    assert hook_failed_run.data.metrics["logged_by_project_hook"] == 1.0

    for runtime_params, error in (({}, None), ({"factor": -1}, "ValueError"), ({"fail_hook": 1}, "RuntimeError")):
        assert active_run_after_session(project, runtime_params) == {"active_after": None, "error": error}


def active_run_after_session(project, runtime_params: dict) -> dict:
    """The project's default pipeline run in a ``KedroSession`` (in this process, as a script or
    a notebook would), then MLflow asked which run is active: the Kedro run must not be left as
    the fluent active run once ``session.run()`` returned (nor once it raised). The error is the
    class name of what ``session.run()`` raised, if it did."""
    import mlflow
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    with kedro_process_state(project.package, project.path):
        bootstrap_project(project.path)
        error = None
        with KedroSession.create(project_path=project.path, runtime_params=runtime_params) as session:
            try:
                session.run()
            except Exception as raised:  # noqa: BLE001 - reported, not hidden
                error = type(raised).__name__
        active = mlflow.active_run()
    return {"active_after": active.info.run_id if active is not None else None, "error": error}
