"""Tags of a tracked run: strings a person can read, nothing secret, no object reprs."""

from __future__ import annotations

import getpass
import os
import re
import shlex
import socket
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from kedro import __version__ as kedro_version

from kedro_mlflow_starter import __version__
from kedro_mlflow_starter.config.redaction import REDACTED, is_secret, redact_uri
from kedro_mlflow_starter.tracking.params import flatten, to_text

# How `kedro mlflow sweep` makes a trial's run a named child of its parent run (the only sweep channel).
ENV_PARENT_RUN_ID = "KEDRO_MLFLOW_PARENT_RUN_ID"  # -> tag mlflow.parentRunId
ENV_RUN_NAME = "KEDRO_MLFLOW_RUN_NAME"  # -> the run's name

_OPTIONS = (("tags", "--tags"), ("node_names", "--nodes"), ("from_nodes", "--from-nodes"),
            ("to_nodes", "--to-nodes"), ("from_inputs", "--from-inputs"), ("to_outputs", "--to-outputs"),
            ("namespaces", "--namespaces"))


def kedro_command(run_params: Mapping[str, Any], secret_patterns: Iterable[str]) -> str:
    """The shell-quoted ``kedro run ...`` that reproduces this run (secrets redacted), from Kedro's
    run parameters, never ``sys.argv``: the same for ``kedro run``, a notebook or a script."""
    parts = ["kedro", "run"]
    if run_params.get("pipeline_names"):
        parts.append("--pipelines=" + ",".join(sorted(run_params["pipeline_names"])))
    if run_params.get("env"):
        parts.append(f"--env={run_params['env']}")
    runner = runner_name(run_params.get("runner"))
    if runner and runner != "SequentialRunner":
        parts.append(f"--runner={runner}")
    for key, option in _OPTIONS:
        if run_params.get(key):
            parts.append(f"{option}=" + ",".join(str(v) for v in run_params[key]))
    runtime = run_params.get("runtime_params") or {}
    if runtime:
        pairs = [f"{key}={REDACTED if is_secret(str(key), secret_patterns) else redact_uri(to_text(value))}"
                 for key, value in flatten(runtime, ".", recursive=True).items()]
        parts.append("--params=" + ",".join(pairs))
    load_versions = run_params.get("load_versions") or {}
    if load_versions:
        parts.append("--load-versions=" + ",".join(f"{name}:{version}" for name, version in load_versions.items()))
    if run_params.get("only_missing_outputs"):
        parts.append("--only-missing-outputs")
    return " ".join(parts[:2] + [shlex.quote(part) for part in parts[2:]])


def open_command(run_params: Mapping[str, Any], secret_patterns: Iterable[str]) -> str:
    """The ``kedro mlflow run open ...`` that opens a group run like this one (its ``kedro.command``)."""
    options = shlex.split(kedro_command(run_params, secret_patterns))[2:]
    options = [re.sub(r"^--pipelines=", "--pipeline=", option) for option in options]
    return " ".join(["kedro", "mlflow", "run", "open"] + [shlex.quote(option) for option in options])


def runner_name(runner: Any) -> str:
    """What ``kedro run --runner`` takes, from a class name or an instance repr (Kedro records
    either): ``ThreadRunner`` for Kedro's runners, the dotted path for others; "" for none
    (``KedroSession.run()`` records "None": it runs sequentially)."""
    text = str(runner or "")
    if text == "None":
        return ""
    match = re.match(r"<([\w.]+) object at 0x[0-9a-f]+>", text)
    if not match:
        return text
    path = match.group(1)
    return path.rsplit(".", 1)[-1] if path.startswith("kedro.runner.") else path


def _git(project_path: Path, *args: str) -> str | None:
    try:
        result = subprocess.run(["git", *args], cwd=project_path, capture_output=True, text=True, timeout=5,
                                check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def run_tags(
    run_params: Mapping[str, Any], project_path: Path, package_name: str | None, secret_patterns: Iterable[str]
) -> dict[str, str]:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    tags = {
        "kedro.version": kedro_version,
        "kedro_mlflow_starter.version": __version__,
        "kedro.command": kedro_command(run_params, secret_patterns),
        "kedro.pipeline_names": ",".join(sorted(run_params.get("pipeline_names") or ["__default__"])),
        "kedro.env": str(run_params.get("env") or "local"),
        "kedro.runner": runner_name(run_params.get("runner")) or "SequentialRunner",
        "kedro.session_id": str(run_params.get("run_id") or ""),
        "kedro.package_name": package_name or "",
        "kedro.host": socket.gethostname(),
        "kedro.pid": str(os.getpid()),
        "mlflow.source.type": "PROJECT",
        "mlflow.source.name": package_name or project_path.name,
        "mlflow.user": user,
    }
    commit = _git(project_path, "rev-parse", "HEAD")
    if commit:
        tags.update({"mlflow.source.git.commit": commit, "git.commit": commit})
        status = _git(project_path, "status", "--porcelain", "--untracked-files=no")
        if status is not None:
            tags["git.dirty"] = str(bool(status))
        branch = _git(project_path, "rev-parse", "--abbrev-ref", "HEAD")
        if branch and branch != "HEAD":
            tags["mlflow.source.git.branch"] = branch
    if os.environ.get(ENV_PARENT_RUN_ID):
        tags["mlflow.parentRunId"] = os.environ[ENV_PARENT_RUN_ID]
    return {key: value for key, value in tags.items() if value != ""}
