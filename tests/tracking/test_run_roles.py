"""What a process is to the run it logs into (tracking/run_roles.py): a guest leaves the run open, a
group run's task tags its outcome, the group run's close ends it with the status its tasks earned.
Driven in process on a real SQLite store."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from mlflow import MlflowClient

from kedro_mlflow_starter.config.mlflow_config import MlflowConfig
from kedro_mlflow_starter.tracking.orchestrated import ORCHESTRATED_TAG, derive_outcome
from kedro_mlflow_starter.tracking.run import TrackedRun
from kedro_mlflow_starter.tracking.run_roles import GroupClose, GroupTask, JoinedRun


@pytest.fixture
def config(migrated_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> MlflowConfig:
    store = tmp_path / "mlflow.db"
    shutil.copy(migrated_db, store)
    monkeypatch.chdir(tmp_path)  # MLflow puts a new experiment's artifacts under the current folder
    return MlflowConfig.model_validate({"server": {"mlflow_tracking_uri": f"sqlite:///{store}"},
                                        "tracking": {"experiment": {"name": "roles"}}})


def test_a_guest_logs_into_a_run_and_leaves_it_open(config: MlflowConfig) -> None:
    client = MlflowClient(config.tracking_uri())
    owner = TrackedRun.create(config, "the user's run", {})
    guest = TrackedRun.attach(config, owner.run_id)
    assert isinstance(guest.role, JoinedRun) and not guest.owned and not guest.is_task
    assert guest.close("FINISHED", announce=False) is None
    assert client.get_run(owner.run_id).info.status == "RUNNING"
    owner.close("FINISHED", announce=False)
    assert client.get_run(owner.run_id).info.status == "FINISHED"


def test_a_task_tags_its_outcome_and_close_ends_the_group_run_with_what_the_tasks_earned(
        config: MlflowConfig) -> None:
    client = MlflowClient(config.tracking_uri())
    opened = TrackedRun.create(config, "group", {ORCHESTRATED_TAG: "true"})
    for label, error in (("split", None), ("train", ValueError("C must be > 0"))):
        task = TrackedRun.attach(config, opened.run_id, GroupTask(label, [label], {}))
        assert task.is_task and task.shared
        if error is not None:
            task.role.failed(error)
        task.close("FAILED" if error else "FINISHED", announce=False)
    run = client.get_run(opened.run_id)
    assert run.info.status == "RUNNING"  # a task never ends the group run
    assert run.data.tags["kedro.task.split"] == "FINISHED"
    assert run.data.tags["kedro.task.train"] == "FAILED: ValueError: C must be > 0"
    assert run.data.tags["kedro.node.train"] == "FAILED"

    closing = TrackedRun.attach(config, opened.run_id)
    outcome = derive_outcome(closing.tags, "FINISHED", expected_nodes=["split", "train"])
    closing.role = GroupClose(outcome, log_model=None, pipeline_time=True)
    assert closing.close(outcome.status, announce=False) is None
    run = client.get_run(opened.run_id)
    assert run.info.status == "FAILED"  # an explicit FINISHED is never better than the tasks
    assert run.data.tags["kedro.failed_tasks"] == "train"
    assert run.data.tags["mlflow.note.content"].startswith("Run FAILED: 1 task(s) finished, failed: train")
    assert run.data.metrics["time.pipeline"] >= 0


def test_a_retried_close_marks_the_model_an_interrupted_close_left_pending_failed(config: MlflowConfig) -> None:
    """A first close killed while it uploaded the pipeline model left it PENDING; the retry logs it again."""
    client = MlflowClient(config.tracking_uri())
    opened = TrackedRun.create(config, "group", {ORCHESTRATED_TAG: "true"})
    cut_short = client.create_logged_model(opened.experiment_id, name="pipeline_model", source_run_id=opened.run_id)

    def log_model() -> str:
        logged = client.create_logged_model(opened.experiment_id, name="pipeline_model", source_run_id=opened.run_id)
        client.finalize_logged_model(logged.model_id, "READY")
        return f"models:/{logged.model_id}"

    closing = TrackedRun.attach(config, opened.run_id)
    role = closing.role = GroupClose(derive_outcome(closing.tags), log_model, pipeline_time=False)
    closing.close(role.outcome.status, announce=False)
    assert client.get_run(opened.run_id).info.status == "FINISHED"
    statuses = {model.model_id: str(model.status) for model in client.search_logged_models([opened.experiment_id])}
    assert statuses.pop(cut_short.model_id) == "FAILED"
    assert list(statuses.values()) == ["READY"] and role.model_uri == f"models:/{next(iter(statuses))}"


def test_close_of_a_finished_group_run_fails_it_when_its_pipeline_model_cannot_be_logged(
        config: MlflowConfig) -> None:
    opened = TrackedRun.create(config, "group", {ORCHESTRATED_TAG: "true"})

    def log_model() -> str:
        raise RuntimeError("classifier.pkl is missing")

    closing = TrackedRun.attach(config, opened.run_id)
    role = closing.role = GroupClose(derive_outcome(closing.tags), log_model, pipeline_time=False)
    closing.close(role.outcome.status, announce=False)
    run = MlflowClient(config.tracking_uri()).get_run(opened.run_id)
    assert (run.info.status, role.model_uri) == ("FAILED", None)
    assert "pipeline model (RuntimeError: classifier.pkl is missing)" in run.data.tags["mlflow.note.content"]
    assert "time.pipeline" not in run.data.metrics


def test_a_close_the_store_cannot_record_says_so_and_names_the_fix(
        config: MlflowConfig, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from tests.project_factory import free_port

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    opened = TrackedRun.create(config, "group", {ORCHESTRATED_TAG: "true"})
    task = TrackedRun.attach(config, opened.run_id, GroupTask("train", ["train"], {}))
    task.client = MlflowClient(f"http://127.0.0.1:{free_port()}")  # the server went away

    with caplog.at_level("WARNING", logger="kedro_mlflow_starter"):
        problem = task.close("FINISHED", announce=False)

    assert problem is not None and "cannot connect to" in problem
    assert f"could not mark run {opened.run_id} FINISHED" in caplog.text
    assert "`kedro mlflow stale-runs --mark-killed`" in caplog.text
    assert task.close("FINISHED", announce=False) is None  # closed once: a second close does nothing
    assert "kedro.task.train" not in MlflowClient(config.tracking_uri()).get_run(opened.run_id).data.tags
