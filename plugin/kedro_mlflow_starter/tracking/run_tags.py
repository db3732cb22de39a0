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

from kedro_mlflow_starter.config.redaction import REDACTED, is_secret, redact_uri
from kedro_mlflow_starter.tracking.params import flatten, to_text

# The one channel through which `kedro mlflow sweep` (framework/cli_sweep.py) tells the run a trial
# opens that it is a child: set in the trial's process around its Kedro run, read when the new
# run's tags and name are built. Nothing else in the core knows about sweeps.
ENV_PARENT_RUN_ID = "KEDRO_MLFLOW_PARENT_RUN_ID"  # -> tag mlflow.parentRunId (MLflow's nesting in the UI)
ENV_RUN_NAME = "KEDRO_MLFLOW_RUN_NAME"  # -> the run's name (read by tracking.run.default_run_name)

_OPTIONS = (
    ("tags", "--tags"),
    ("node_names", "--nodes"),
    ("from_nodes", "--from-nodes"),
    ("to_nodes", "--to-nodes"),
    ("from_inputs", "--from-inputs"),
    ("to_outputs", "--to-outputs"),
    ("namespaces", "--namespaces"),
)


def kedro_command(run_params: Mapping[str, Any], secret_patterns: Iterable[str]) -> str:
    """The ``kedro run ...`` command that reproduces this run (secret values redacted).

    The same whether the run came from ``kedro run``, a notebook or a script
    (``KedroSession.run``): every option comes from Kedro's run parameters, none from
    ``sys.argv``, and each is shell-quoted so that the line works when pasted.
    """
    parts = ["kedro", "run"]
    if run_params.get("pipeline_names"):
        parts.append("--pipelines=" + ",".join(sorted(run_params["pipeline_names"])))
    if run_params.get("env"):
        parts.append(f"--env={run_params['env']}")
    runner = runner_name(run_params.get("runner"))
    if runner and runner != "SequentialRunner":
        parts.append(f"--runner={runner}")
    for key, option in _OPTIONS:
        value = run_params.get(key)
        if value:
            parts.append(f"{option}=" + ",".join(str(v) for v in value))
    runtime = run_params.get("runtime_params") or {}
    if runtime:
        pairs = [
            f"{key}={REDACTED if is_secret(str(key), secret_patterns) else redact_uri(to_text(value))}"
            for key, value in flatten(runtime, ".", recursive=True).items()
        ]
        parts.append("--params=" + ",".join(pairs))
    load_versions = run_params.get("load_versions") or {}
    if load_versions:
        parts.append("--load-versions=" + ",".join(f"{name}:{version}" for name, version in load_versions.items()))
    if run_params.get("only_missing_outputs"):
        parts.append("--only-missing-outputs")
    return " ".join(parts[:2] + [shlex.quote(part) for part in parts[2:]])


def open_command(run_params: Mapping[str, Any], secret_patterns: Iterable[str]) -> str:
    """The ``kedro mlflow run open ...`` command that opens a run like this group run.

    A group run's ``kedro.command``: no ``kedro run`` of the whole pipeline ever ran (its tasks
    each ran a slice), so the tag names the step that made the run; the DAG template's setup
    task calls its Python form, ``open_pipeline_run``, with the same arguments.
    """
    single = kedro_command(run_params, secret_patterns)
    options = shlex.split(single)[2:]
    renamed = []
    for option in options:
        if option.startswith("--pipelines="):
            option = "--pipeline=" + option[len("--pipelines="):]
        renamed.append(option)
    return " ".join(["kedro", "mlflow", "run", "open"] + [shlex.quote(option) for option in renamed])


def runner_name(runner: Any) -> str:
    """What ``kedro run --runner`` takes, from a class name or an instance repr (Kedro passes
    either): ``ThreadRunner`` for Kedro's runners, the dotted path for others; "" when no
    runner was given (``KedroSession.run()`` records the string "None": it runs sequentially).
    """
    text = str(runner or "")
    if text == "None":
        return ""
    match = re.match(r"<([\w.]+) object at 0x[0-9a-f]+>", text)
    if not match:
        return text
    path = match.group(1)
    return path.rsplit(".", 1)[-1] if path.startswith("kedro.runner.") else path


def git_tags(project_path: Path) -> dict[str, str]:
    """Commit and dirty flag of the project's git repository, if it is in one."""
    def git(*args: str) -> str | None:
        try:
            result = subprocess.run(
                ["git", *args], cwd=project_path, capture_output=True, text=True, timeout=5, check=False
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return result.stdout.strip() if result.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if not commit:
        return {}
    status = git("status", "--porcelain", "--untracked-files=no")
    tags = {"mlflow.source.git.commit": commit, "git.commit": commit}
    if status is not None:
        tags["git.dirty"] = str(bool(status))
    branch = git("rev-parse", "--abbrev-ref", "HEAD")
    if branch and branch != "HEAD":
        tags["mlflow.source.git.branch"] = branch
    return tags


def run_tags(
    run_params: Mapping[str, Any],
    project_path: Path,
    package_name: str | None,
    secret_patterns: Iterable[str],
) -> dict[str, str]:
    from kedro import __version__ as kedro_version

    from kedro_mlflow_starter import __version__

    pipeline_names = sorted(run_params.get("pipeline_names") or ["__default__"])
    tags = {
        "kedro.version": kedro_version,
        "kedro_mlflow_starter.version": __version__,
        "kedro.command": kedro_command(run_params, secret_patterns),
        "kedro.pipeline_names": ",".join(pipeline_names),
        "kedro.env": str(run_params.get("env") or "local"),
        "kedro.runner": runner_name(run_params.get("runner")) or "SequentialRunner",
        "kedro.session_id": str(run_params.get("run_id") or ""),
        "kedro.package_name": package_name or "",
        "kedro.host": socket.gethostname(),
        "kedro.pid": str(os.getpid()),
        "mlflow.source.type": "PROJECT",
        "mlflow.source.name": package_name or project_path.name,
        "mlflow.user": _user(),
    }
    tags.update(git_tags(project_path))
    if os.environ.get(ENV_PARENT_RUN_ID):
        tags["mlflow.parentRunId"] = os.environ[ENV_PARENT_RUN_ID]
    return {key: value for key, value in tags.items() if value != ""}


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
