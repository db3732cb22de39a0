"""Parameters as MLflow params: flattening, redaction, key and length limits."""

from __future__ import annotations

from pathlib import Path

import pytest

from kedro_mlflow_starter.config.mlflow_config import ParamsConfig
from kedro_mlflow_starter.config.redaction import REDACTED
from kedro_mlflow_starter.errors import LongParameterError
from kedro_mlflow_starter.tracking.params import flatten, prepare_params, to_text


@pytest.mark.parametrize(
    ("value", "text"),
    [("x", "x"), (1, "1"), (0.5, "0.5"), (True, "True"), (None, "None"), ([1, 2], "[1, 2]"),
     ({"b": 1, "a": 2}, '{"a": 2, "b": 1}'), (Path("p"), "p"), ((1, "a"), '[1, "a"]')],
)
def test_to_text_is_readable(value, text) -> None:
    assert to_text(value) == text


@pytest.mark.parametrize(
    ("values", "sep", "recursive", "expected"),
    [
        ({"a": {"b": 1, "c": {"d": 2}}}, ".", True, {"a.b": 1, "a.c.d": 2}),
        ({"a": {"b": 1, "c": {"d": 2}}}, ".", False, {"a.b": 1, "a.c": {"d": 2}}),
        ({"a": {"b": 1}}, "/", True, {"a/b": 1}),
        ({"a": {}}, ".", True, {"a": {}}),
    ],
)
def test_flatten(values, sep, recursive, expected) -> None:
    assert flatten(values, sep, recursive) == expected


def _params(**config) -> ParamsConfig:
    return ParamsConfig.model_validate(config)


@pytest.mark.parametrize(
    ("values", "config", "params", "tags"),
    [
        ({"model_options": {"C": 1.0}}, {}, {"model_options": '{"C": 1.0}'}, {}),
        ({"model_options": {"C": 1.0}}, {"dict_params": {"flatten": True}}, {"model_options.C": "1.0"}, {}),
        ({"db_password": "x", "opts": {"api_key": "k", "n": 1}}, {},
         {"db_password": REDACTED, "opts": '{"api_key": "***", "n": 1}'}, {}),
        ({"long": "x" * 7000}, {"long_params_strategy": "truncate"}, {"long": "x" * 6000}, {}),
        ({"long": "x" * 7000}, {"long_params_strategy": "tag"}, {}, {"long": "x" * 7000}),
        # the password of a URL inside any value, whatever the key is called (issue 17)
        ({"service": {"endpoint": "https://user:pw@api.example/v1"}}, {"dict_params": {"flatten": True}},
         {"service.endpoint": "https://***@api.example/v1"}, {}),
        ({"service": {"endpoint": "https://user:pw@api.example/v1"}}, {},
         {"service": '{"endpoint": "https://***@api.example/v1"}'}, {}),
        ({"mirrors": ["http://a:b@m1/x", "http://m2/y"]}, {}, {"mirrors": '["http://***@m1/x", "http://m2/y"]'}, {}),
        ({"db": "postgresql://admin:pw@db:5432/x"}, {}, {"db": "postgresql://***@db:5432/x"}, {}),
        ({"long": "https://u:p@h/" + "x" * 7000}, {"long_params_strategy": "tag"}, {},
         {"long": "https://***@h/" + "x" * 7000}),
        ({"url": "https://api.example/v1?user=me@example.com"}, {}, {"url": "https://api.example/v1?user=me@example.com"}, {}),
    ],
)
def test_prepare_params(values, config, params, tags) -> None:
    prepared = prepare_params(values, _params(**config))
    assert prepared.params == params
    assert prepared.tags == tags


def test_bad_keys_are_renamed_and_truncation_is_told() -> None:
    prepared = prepare_params({"a{b}": 1, "long": "x" * 7000}, _params(long_params_strategy="truncate"))
    assert prepared.params["a_b_"] == "1"
    notices = prepared.notices()
    assert "MLflow parameter 'a{b}' is logged as 'a_b_'" in notices[0]
    assert "'long' is truncated to its first 6000 characters" in notices[1]
    assert "long_params_strategy" in notices[1]


def test_long_param_fails_by_default_naming_the_setting() -> None:
    with pytest.raises(LongParameterError, match="'long' is 7000 characters long.*long_params_strategy"):
        prepare_params({"long": "x" * 7000}, _params())
