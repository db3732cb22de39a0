"""Folders for model and artifact downloads, removed when the process exits (MLflow's own
``tempfile.mkdtemp()`` destination is never removed, and a loaded model may still read its files)."""

from __future__ import annotations

import atexit
import inspect
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

ROOT_PREFIX = "kedro-mlflow-downloads-"  # + "<pid>-": whose folder it is

_lock = threading.Lock()
_root: str | None = None
_root_pid: int | None = None


def download_folder(prefix: str) -> str:
    """A new empty folder, removed (with everything in it) when this process exits."""
    global _root, _root_pid
    with _lock:
        if _root is None or _root_pid != os.getpid():  # a forked child makes its own
            _root = tempfile.mkdtemp(prefix=f"{ROOT_PREFIX}{os.getpid()}-")
            _root_pid = os.getpid()
            atexit.register(_remove, _root, _root_pid)
        return tempfile.mkdtemp(prefix=prefix, dir=_root)


def _remove(root: str, pid: int) -> None:
    if os.getpid() == pid:
        shutil.rmtree(root, ignore_errors=True)


def load_model(load: Callable[..., Any], model_uri: str, load_args: dict[str, Any], name: str) -> Any:
    """``load(model_uri, **load_args)``; when MLflow would download the model to a temp folder
    of its own, it downloads into one of ours instead (unless the user set ``dst_path``)."""
    if "dst_path" not in load_args and _mlflow_downloads(model_uri) and _accepts_dst_path(load):
        load_args = {**load_args, "dst_path": download_folder(f"kedro-mlflow-model-{name}-")}
    return load(model_uri, **load_args)


def _mlflow_downloads(model_uri: str) -> bool:
    """False when MLflow reads the model in place: a local path, or ``models:/`` on a local store."""
    scheme = urlparse(model_uri).scheme
    if scheme in ("", "file"):
        return False
    if scheme == "models":
        import mlflow

        return urlparse(mlflow.get_tracking_uri()).scheme not in ("", "file", "sqlite")
    return True  # runs:/ (always copied), s3://, http(s)://, ...


def _accepts_dst_path(function: Callable[..., Any]) -> bool:
    try:
        return "dst_path" in inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False
