"""The reproducing command and the runner's name recorded as tags."""

from __future__ import annotations

import pytest

from kedro_mlflow_starter.tracking.run_tags import kedro_command, runner_name


@pytest.mark.parametrize(
    ("run_params", "command"),
    [
        ({}, "kedro run"),
        ({"pipeline_names": ["b", "a"]}, "kedro run --pipelines=a,b"),
        ({"env": "prod", "runner": "ParallelRunner"}, "kedro run --env=prod --runner=ParallelRunner"),
        ({"runner": "<kedro.runner.thread_runner.ThreadRunner object at 0x7f00ab>"}, "kedro run --runner=ThreadRunner"),
        ({"runner": "SequentialRunner", "node_names": ["n1", "n2"]}, "kedro run --nodes=n1,n2"),
        ({"tags": ["t"], "from_nodes": ["x"], "to_outputs": ["y"]}, "kedro run --tags=t --from-nodes=x --to-outputs=y"),
        ({"runtime_params": {"model": {"C": 0.5}, "api_token": "s"}}, "kedro run '--params=model.C=0.5,api_token=***'"),
        ({"runtime_params": {"service": {"endpoint": "https://u:pw@api.example/v1"}}},
         "kedro run '--params=service.endpoint=https://***@api.example/v1'"),
    ],
)
def test_reproducing_command(run_params, command) -> None:
    assert kedro_command(run_params, ["token"]) == command


@pytest.mark.parametrize(
    ("runner", "name"),
    [("ThreadRunner", "ThreadRunner"), ("<kedro.runner.ParallelRunner object at 0x1a>", "ParallelRunner"),
     (None, ""), ("", "")],
)
def test_runner_name(runner, name) -> None:
    assert runner_name(runner) == name
