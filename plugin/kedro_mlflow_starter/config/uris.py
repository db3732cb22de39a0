"""Tracking and registry URIs: ``mlflow.yml``'s, else ``MLFLOW_TRACKING_URI``, else ``sqlite:///<project
root>/mlflow.db``; relative paths resolve against the project root, never the current directory."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

from kedro_mlflow_starter.errors import UnsupportedTrackingUriError

REMOTE_SCHEMES = ("http", "https", "databricks", "databricks-uc", "uc")
DB_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")
ALLOWED = (
    "sqlite:///<path>.db, postgresql://..., mysql://..., mssql://..., http(s)://host:port, "
    "databricks, file:///<dir>, or a local path")


def is_local_store(uri: str) -> bool:
    return urlparse(uri).scheme in ("", "file", "sqlite")


def resolve_tracking_uri(configured: str | None, project_path: Path | None) -> str:
    root = Path(project_path) if project_path else Path.cwd()
    uri = configured or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(root / 'mlflow.db').as_posix()}"
    return _resolve(uri, root)


def resolve_registry_uri(configured: str | None, project_path: Path | None) -> str | None:
    if not configured:
        return None
    return _resolve(configured, Path(project_path) if project_path else Path.cwd())


def _resolve(uri: str, root: Path) -> str:
    uri = uri.strip()
    if uri in ("databricks", "databricks-uc"):
        return uri
    scheme = urlparse(uri).scheme
    if scheme == "sqlite":
        prefix = "sqlite:///"
        if not uri.startswith(prefix):
            raise UnsupportedTrackingUriError(f"'{uri}' is not a valid sqlite URI; use sqlite:///<path>.db")
        path = uri[len(prefix):]
        if path and not path.startswith("/") and path != ":memory:":
            return f"{prefix}{(root / path).resolve().as_posix()}"
        return uri
    if scheme == "file":
        path = urlparse(uri).path
        return (root / path).resolve().as_uri() if not Path(path).is_absolute() else uri
    if scheme == "" or (len(scheme) == 1 and os.name == "nt"):
        return (root / uri).resolve().as_uri()
    if scheme in REMOTE_SCHEMES or scheme.split("+")[0] in DB_SCHEMES:
        return uri
    raise UnsupportedTrackingUriError(f"tracking URI scheme '{scheme}' in '{uri}' is not supported; use {ALLOWED}")
