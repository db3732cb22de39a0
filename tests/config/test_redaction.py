"""What must not be written or printed: URI credentials and secret-looking keys."""

from __future__ import annotations

import pytest

from kedro_mlflow_starter.config.redaction import REDACTED, is_secret, redact_nested, redact_uri


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://user:s3cret@host:5000/x", "https://***@host:5000/x"),
        ("see postgresql://admin:pw@db/mlflow and http://t0k@h", "see postgresql://***@db/mlflow and http://***@h"),
        ("http://host:5000", "http://host:5000"),
        ("mail me@example.com", "mail me@example.com"),
        ("", ""),
    ],
)
def test_redact_uri(text, expected) -> None:
    assert redact_uri(text) == expected


@pytest.mark.parametrize(
    ("key", "secret"),
    [("password", True), ("db_PASSWORD", True), ("api-key", True), ("AWS_ACCESS_KEY_ID", True),
     ("github_token", True), ("credentials_path", True), ("learning_rate", False), ("tokenizer", True),
     ("n_estimators", False), ("", False)],
)
def test_secret_names(key, secret) -> None:
    assert is_secret(key) is secret


def test_redact_nested_walks_mappings_and_sequences() -> None:
    value = {"db": {"user": "a", "password": "b"}, "hosts": [{"token": "t", "name": "h"}], "n": 1}
    assert redact_nested(value) == {"db": {"user": "a", "password": REDACTED},
                                    "hosts": [{"token": REDACTED, "name": "h"}], "n": 1}


def test_redact_nested_makes_config_fit_to_write() -> None:
    config = {
        "a": {"type": "pandas.SQLTableDataset", "credentials": {"con": "postgresql://u:pw@db/x"},
              "load_args": {"storage_options": {"client_secret": "zzz", "account": "acc"}}},
        "b": {"credentials": "named_entry", "filepath": "s3://k:s@bucket/b.csv"},
        "runner": object(), 3: ("x", {"api_token": "t"}),
    }
    clean = redact_nested(config, ["secret", "password", "token"], credentials_by_name=True)
    assert clean["a"]["credentials"] == REDACTED
    assert clean["a"]["load_args"]["storage_options"] == {"client_secret": REDACTED, "account": "acc"}
    assert clean["b"] == {"credentials": "named_entry", "filepath": "s3://***@bucket/b.csv"}
    assert clean["runner"] == "object" and clean["3"] == ["x", {"api_token": REDACTED}]
    assert redact_nested({"credentials": "named_entry"}) == {"credentials": REDACTED}  # not a catalog: a secret
