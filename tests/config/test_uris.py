"""Tracking and registry URI resolution against the project root."""

from __future__ import annotations

from pathlib import Path

import pytest

from kedro_mlflow_starter.config.uris import resolve_registry_uri, resolve_tracking_uri
from kedro_mlflow_starter.errors import UnsupportedTrackingUriError

ROOT = Path("/work/project")


@pytest.mark.parametrize(
    ("configured", "env", "expected"),
    [
        (None, None, "sqlite:////work/project/mlflow.db"),
        ("sqlite:///mlflow.db", None, "sqlite:////work/project/mlflow.db"),
        ("sqlite:///sub/../runs.db", None, "sqlite:////work/project/runs.db"),
        ("sqlite:////abs/runs.db", None, "sqlite:////abs/runs.db"),
        ("sqlite:///:memory:", None, "sqlite:///:memory:"),
        ("mlruns", None, "file:///work/project/mlruns"),
        ("file:///abs/mlruns", None, "file:///abs/mlruns"),
        ("http://127.0.0.1:5000", None, "http://127.0.0.1:5000"),
        ("https://u:p@host/mlflow", None, "https://u:p@host/mlflow"),
        ("postgresql+psycopg2://u@db/mlflow", None, "postgresql+psycopg2://u@db/mlflow"),
        ("databricks", None, "databricks"),
        (None, "http://from-env:5000", "http://from-env:5000"),
        ("sqlite:///yml.db", "http://from-env:5000", "sqlite:////work/project/yml.db"),
        ("  http://padded:5000 ", None, "http://padded:5000"),
    ],
)
def test_tracking_uri_resolution(monkeypatch, configured, env, expected) -> None:
    if env is None:
        monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    else:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", env)
    assert resolve_tracking_uri(configured, ROOT) == expected


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("sqlite://relative.db", "is not a valid sqlite URI; use sqlite:///<path>.db"),
        ("ftp://host/x", "scheme 'ftp' in 'ftp://host/x' is not supported"),
    ],
)
def test_unsupported_tracking_uris_name_the_allowed_forms(uri, message) -> None:
    with pytest.raises(UnsupportedTrackingUriError, match=message):
        resolve_tracking_uri(uri, ROOT)


def test_registry_uri_is_none_unless_configured_and_resolves_like_tracking() -> None:
    assert resolve_registry_uri(None, ROOT) is None
    assert resolve_registry_uri("sqlite:///registry.db", ROOT) == "sqlite:////work/project/registry.db"
