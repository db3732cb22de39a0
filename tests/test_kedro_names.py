"""How Kedro names a pipeline's inputs."""

from __future__ import annotations

import pytest

from kedro_mlflow_starter.kedro_names import is_parameter as is_param, strip_transcoding


@pytest.mark.parametrize(
    ("name", "param", "stripped"),
    [("parameters", True, "parameters"), ("params:a.b", True, "params:a.b"), ("model", False, "model"),
     ("model@pickle", False, "model"), ("params_like", False, "params_like")],
)
def test_dataset_name_rules(name, param, stripped) -> None:
    assert is_param(name) is param
    assert strip_transcoding(name) == stripped
