"""The pure rules of an orchestrated run (tracking/orchestrated.py), table-driven."""

from __future__ import annotations

import pytest

from kedro_mlflow_starter.tracking.orchestrated import (
    derive_outcome,
    plan_join,
    summary_tags,
    task_label,
    task_tag_key,
)


@pytest.mark.parametrize(
    ("run_params", "label"),
    [
        ({"node_names": ["train_model"]}, "train_model"),
        ({"node_names": ["b", "a"], "tags": ["x"]}, "a,b"),
        ({"namespaces": ["ns"]}, "ns"),
        ({"tags": ["t2", "t1"]}, "t1,t2"),
        ({"pipeline_names": ["training"]}, "training"),
        ({}, "__default__"),
    ],
)
def test_a_task_is_named_by_what_it_runs(run_params: dict, label: str) -> None:
    assert task_label(run_params) == label


def test_task_tag_keys_are_valid_mlflow_keys_and_long_ones_stay_distinct() -> None:
    assert task_tag_key("a,b") == "kedro.task.a_b"
    long_a, long_b = "n" * 300 + "a", "n" * 300 + "b"
    assert len(task_tag_key(long_a)) <= 250
    assert task_tag_key(long_a) != task_tag_key(long_b)


def test_a_joining_task_logs_only_what_the_run_lacks_and_reports_different_values() -> None:
    plan = plan_join(
        run_params={"a": "1", "b": "2"}, run_tags={"long": "x"},
        params={"a": "1", "b": "3", "c": "4"}, tags={"long": "x", "other": "y"},
    )
    assert plan.params == {"c": "4"}
    assert plan.conflicts == {"b": ("2", "3")}
    assert plan.tags == {"other": "y"}


@pytest.mark.parametrize(
    ("tags", "requested", "failed", "killed", "status"),
    [
        ({"kedro.task.a": "FINISHED", "kedro.task.b": "FINISHED"}, "auto", (), (), "FINISHED"),
        ({"kedro.task.a": "FINISHED", "kedro.task.b": "FAILED: ValueError: x"}, "auto", (), (), "FAILED"),
        ({"kedro.task.a": "KILLED", "kedro.task.b": "FINISHED"}, "auto", (), (), "KILLED"),
        ({"kedro.task.a": "KILLED", "kedro.task.b": "FAILED: x"}, "auto", (), (), "FAILED"),
        ({"kedro.task.a": "FINISHED"}, "auto", ["b"], (), "FAILED"),  # died before it could record it
        ({"kedro.task.a": "FINISHED"}, "auto", (), ["b"], "KILLED"),
        ({"kedro.task.a": "FINISHED"}, "KILLED", (), (), "KILLED"),  # the orchestrator cancelled the run
        ({"kedro.task.a": "FAILED: x"}, "FINISHED", (), (), "FAILED"),  # never better than the tasks
        ({}, "auto", (), (), "FINISHED"),
    ],
)
def test_the_status_is_honest(tags: dict, requested: str, failed: tuple, killed: tuple, status: str) -> None:
    assert derive_outcome(tags, requested, failed, killed).status == status


def test_a_failed_task_is_named_once_however_the_orchestrator_spells_it() -> None:
    outcome = derive_outcome({"kedro.task.train_model": "FAILED: ValueError: C must be > 0"}, "auto",
                             failed_tasks=["train-model"])
    assert outcome.failed == ["train_model"]
    tags = summary_tags(outcome)
    assert tags["kedro.failed_tasks"] == "train_model"
    assert "train_model (ValueError: C must be > 0)" in tags["mlflow.note.content"]


def test_a_finished_run_gets_no_failure_tags() -> None:
    assert summary_tags(derive_outcome({"kedro.task.a": "FINISHED"})) == {}


@pytest.mark.parametrize(
    ("tags", "status", "missing"),
    [
        ({"kedro.task.a": "FINISHED", "kedro.node.a": "FINISHED", "kedro.node.b": "FINISHED"}, "FINISHED", []),
        ({"kedro.task.a": "FINISHED", "kedro.node.a": "FINISHED"}, "FAILED", ["b"]),  # b never ran: incomplete
        ({"kedro.task.a": "KILLED", "kedro.node.a": "KILLED"}, "KILLED", ["b"]),  # cancelled before b
        ({}, "FAILED", ["a", "b"]),  # closed before any task ran
    ],
)
def test_every_node_of_the_pipeline_must_have_run(tags: dict, status: str, missing: list) -> None:
    outcome = derive_outcome(tags, expected_nodes=["a", "b"])
    assert (outcome.status, outcome.missing) == (status, missing)
    if missing:
        assert summary_tags(outcome)["kedro.missing_nodes"] == ",".join(missing)
