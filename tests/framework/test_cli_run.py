"""``kedro mlflow run open | close | replay``: how the commands read their options."""

from __future__ import annotations

import pytest

from kedro_mlflow_starter.framework.cli_run import _split_params


@pytest.mark.parametrize(
    ("given", "parsed"),
    [
        (("model_options.C=0.5",), {"model_options": {"C": 0.5}}),
        (("a=1,b=x", "c.d=true"), {"a": 1, "b": "x", "c": {"d": True}}),
        ((), {}),
    ],
)
def test_open_reads_params_as_kedro_run_does(given: tuple[str, ...], parsed: dict) -> None:
    assert _split_params(None, None, given) == parsed  # the option's click callback: (ctx, param, values)
