"""One MLflow run for a pipeline that an orchestrator runs as many tasks: ``open`` creates it and
tags it ``kedro.orchestrated``, every task (``MLFLOW_RUN_ID`` set) joins it and tags its outcome
``kedro.task.<nodes>``, ``close`` ends it with the status the tasks earned (tracking/run_roles.py)."""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kedro_mlflow_starter.tracking.params import INVALID_KEY_CHARS, MAX_KEY_LENGTH

if TYPE_CHECKING:  # pragma: no cover
    from mlflow import MlflowClient
    from mlflow.entities import RunTag

logger = logging.getLogger("kedro_mlflow_starter")

ORCHESTRATED_TAG = "kedro.orchestrated"  # "true": a task that joins the run is one of its parts
TASK_TAG_PREFIX = "kedro.task."  # kedro.task.<nodes> = FINISHED | FAILED: <error> | KILLED, one per task
NODE_TAG_PREFIX = "kedro.node."  # kedro.node.<node> = its task's status: `close` checks every node ran
FAILED_TASKS_TAG = "kedro.failed_tasks"
KILLED_TASKS_TAG = "kedro.killed_tasks"
HEARTBEAT_TAG = "kedro.heartbeat"
HEARTBEAT_SECONDS = 60.0
_ATTEMPTS = re.compile(r"^\w+ after (\d+) attempts")
_MAX_VALUE = 5000


def is_orchestrated(tags: Mapping[str, str]) -> bool:
    return str(tags.get(ORCHESTRATED_TAG, "")).lower() == "true"


def task_label(run_params: Mapping[str, Any]) -> str:
    """What a task ran, readable: its ``--nodes``, else its namespaces/tags, else its pipelines."""
    for key in ("node_names", "namespaces", "tags"):
        values = run_params.get(key)
        if values:
            return ",".join(sorted(str(v) for v in values))
    return "+".join(sorted(run_params.get("pipeline_names") or ["__default__"]))


def check_same_env(run_id: str, run_tags: Mapping[str, str], run_params: Mapping[str, Any]) -> None:
    """Refuse a task whose ``--env`` (``local`` when not given) is not the one the run was opened with: another
    env reads another ``mlflow.yml``, catalog and parameters."""
    from kedro_mlflow_starter.errors import OrchestratedRunError

    opened = run_tags.get("kedro.env")
    mine = str(run_params.get("env") or "local")
    if opened is None or opened == mine:
        return
    label = task_label(run_params)
    raise OrchestratedRunError(
        f"This task ({label}) runs with --env {mine}, but MLflow run {run_id} (MLFLOW_RUN_ID) was opened by "
        f"`kedro mlflow run open --env {opened}`: its records would not be those of that pipeline run, so the "
        f"task does not join it. Run the task with `--env {opened}` (or open the run with `--env {mine}`), or "
        "unset MLFLOW_RUN_ID to track the task as a run of its own."
    )


def task_tag_key(label: str, prefix: str = TASK_TAG_PREFIX) -> str:
    """A valid MLflow tag key for ``label``; a long label keeps a hash so keys stay distinct."""
    key = prefix + INVALID_KEY_CHARS.sub("_", label)
    if len(key) <= MAX_KEY_LENGTH:
        return key
    digest = hashlib.sha256(label.encode()).hexdigest()[:12]
    return key[: MAX_KEY_LENGTH - 13] + "~" + digest


@dataclass
class JoinPlan:
    """What a joining task logs: only what the run lacks, never a second value for a key."""

    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    conflicts: dict[str, tuple[str, str]] = field(default_factory=dict)  # key -> (in the run, in the task)


def plan_join(
    run_params: Mapping[str, str], run_tags: Mapping[str, str], params: Mapping[str, str], tags: Mapping[str, str]
) -> JoinPlan:
    plan = JoinPlan()
    for key, value in params.items():
        if key not in run_params:
            plan.params[key] = value
        elif run_params[key] != value:
            plan.conflicts[key] = (run_params[key], value)
    plan.tags = {key: value for key, value in tags.items() if key not in run_tags}
    return plan


def join(client: MlflowClient, run_id: str, params: Mapping[str, str], param_tags: Mapping[str, str]) -> JoinPlan:
    """Log the task's params (and long-param tags) the orchestrated run does not hold yet; a value that differs
    from the run's is kept out and reported (MLflow params are write-once)."""
    from mlflow.entities import Param, RunTag
    from mlflow.exceptions import MlflowException

    run = client.get_run(run_id)
    plan = plan_join(run.data.params, run.data.tags, params, param_tags)
    for key, (kept, given) in sorted(plan.conflicts.items()):
        logger.warning(
            "MLflow: parameter '%s' is %r in this task but the orchestrated run %s holds %r; the run keeps "
            "%r (give --params to `kedro mlflow run open`, not to one task).", key, given, run_id, kept, kept,
        )
    if plan.params or plan.tags:
        try:
            client.log_batch(
                run_id,
                params=[Param(k, v) for k, v in plan.params.items()],
                tags=[RunTag(k, v) for k, v in plan.tags.items()],
            )
        except MlflowException as error:
            # A task running at the same moment logged one of these keys first; values that
            # agree are not an error, and a disagreeing value must not fail the task either.
            logger.warning("MLflow: some parameters were already logged to run %s by another task (%s).",
                           run_id, str(error).splitlines()[0])
    return plan


def task_outcome(status: str, error: str | None, previous: str | None) -> str:
    """The value of a task's tag: its status, how many attempts it took when the orchestrator
    retried it (``previous`` is the tag an earlier attempt left), and the error if it failed:
    ``FINISHED``, ``FINISHED after 2 attempts``, ``FAILED after 3 attempts: ValueError: ...``."""
    attempts = 1
    if previous:
        found = _ATTEMPTS.match(previous)
        attempts = (int(found.group(1)) if found else 1) + 1
    value = status if attempts == 1 else f"{status} after {attempts} attempts"
    return value if not error else f"{value}: {error}"


def record_task_outcome(client: MlflowClient, run_id: str, label: str, status: str, error: str | None = None,  # noqa: PLR0913
                        nodes: Iterable[str] = (), retried: bool = True) -> None:
    """Tag the run with how this task and each of its nodes ended (``close`` reads these tags); ``retried``
    False: this is the same attempt's outcome (a replay), not one more attempt."""
    from mlflow.entities import RunTag

    key = task_tag_key(label)
    previous = client.get_run(run_id).data.tags.get(key) if retried else None
    tags = [RunTag(key, task_outcome(status, error, previous)[:_MAX_VALUE]), heartbeat_tag()]
    tags += [RunTag(task_tag_key(node, NODE_TAG_PREFIX), status) for node in nodes]
    client.log_batch(run_id, tags=tags)  # the client sends MLflow's 100-tag chunks


def heartbeat_tag() -> RunTag:
    """``kedro.heartbeat``: when a task of the run was last seen alive (ms since the epoch)."""
    from mlflow.entities import RunTag

    return RunTag(HEARTBEAT_TAG, str(int(time.time() * 1000)))


class Heartbeat:
    """From its creation until ``stop``, refresh the run's ``kedro.heartbeat`` every ``interval`` seconds, so
    that ``kedro mlflow stale-runs`` tells a group run whose tasks are alive (on any machine)
    from one whose ``close`` never came."""

    def __init__(self, client: MlflowClient, run_id: str, interval: float = HEARTBEAT_SECONDS) -> None:
        self._client = client
        self._run_id = run_id
        self._interval = interval
        self._stop = threading.Event()
        threading.Thread(target=self._beat, name="kedro-mlflow-heartbeat", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _beat(self) -> None:
        while True:
            try:
                self._client.log_batch(self._run_id, tags=[heartbeat_tag()])
            except Exception as error:  # noqa: BLE001 - a missed beat is not the pipeline's failure
                logger.debug("MLflow: heartbeat of run %s not recorded: %s", self._run_id, error)
            if self._stop.wait(self._interval):
                return


def last_seen_ms(tags: Mapping[str, str], start_time: int) -> int:
    """When the group run was last seen alive: its newest heartbeat, else its start."""
    beat = str(tags.get(HEARTBEAT_TAG, ""))
    return max(int(beat), start_time) if beat.isdigit() else start_time


@dataclass
class Outcome:
    status: str
    failed: list[str] = field(default_factory=list)
    killed: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # nodes no task reported
    errors: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        parts = [f"{len(self.finished)} task(s) finished"]
        if self.failed:
            parts.append("failed: " + "; ".join(
                f"{task} ({self.errors[task]})" if self.errors.get(task) else task for task in self.failed))
        if self.killed:
            parts.append("killed: " + ", ".join(self.killed))
        if self.missing:
            parts.append("never reported (not run, or the task died without a trace): " + ", ".join(self.missing))
        return ", ".join(parts)


def derive_outcome(  # noqa: PLR0913
    tags: Mapping[str, str], requested: str = "auto", failed_tasks: Iterable[str] = (),
    killed_tasks: Iterable[str] = (), expected_nodes: Iterable[str] = (),
) -> Outcome:
    """The run's honest status from its task tags and what the orchestrator reports: FAILED if a task failed,
    else KILLED if one was cancelled, else FAILED if a node of ``expected_nodes`` was never reported, else
    FINISHED; an explicit ``requested`` status is only ever made worse by the tasks' outcomes."""
    outcome = Outcome(status="FINISHED")
    for key in sorted(tags):
        if not key.startswith(TASK_TAG_PREFIX):
            continue
        task = key[len(TASK_TAG_PREFIX):]
        outcome_text, _, error = str(tags[key]).partition(": ")
        status = outcome_text.split(" ", 1)[0]
        if status == "FAILED":
            outcome.failed.append(task)
            outcome.errors[task] = error
        elif status == "KILLED":
            outcome.killed.append(task)
        else:
            outcome.finished.append(task)
    for task in failed_tasks:
        if not _known(task, outcome.failed):
            outcome.failed.append(task)
            outcome.errors.setdefault(task, "reported failed by the orchestrator")
    for task in killed_tasks:
        if not _known(task, outcome.killed + outcome.failed):
            outcome.killed.append(task)
    outcome.missing = [node for node in expected_nodes if task_tag_key(node, NODE_TAG_PREFIX) not in tags]
    # Nodes that never ran are what a cancelled workflow leaves: KILLED explains them; otherwise
    # the run is incomplete (a task died without a trace, or `close` came too early): FAILED.
    derived = ("FAILED" if outcome.failed else "KILLED" if outcome.killed
               else "FAILED" if outcome.missing else "FINISHED")
    if requested == "auto":
        outcome.status = derived
    else:
        rank = {"FINISHED": 0, "KILLED": 1, "FAILED": 2}
        outcome.status = max(requested, derived, key=rank.__getitem__)
    return outcome


def _known(task: str, tasks: Iterable[str]) -> bool:
    """Whether ``task`` is already listed, its name spelt as the orchestrator spells it
    (Airflow's task id ``train-model`` is the task that tagged itself ``train_model``)."""
    def slug(name: str) -> str:
        return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")

    return slug(task) in {slug(other) for other in tasks}


def summary_tags(outcome: Outcome) -> dict[str, str]:
    tags = {}
    if outcome.missing:
        tags["kedro.missing_nodes"] = ",".join(outcome.missing)[:_MAX_VALUE]
    if outcome.failed:
        tags[FAILED_TASKS_TAG] = ",".join(outcome.failed)[:_MAX_VALUE]
    if outcome.killed:
        tags[KILLED_TASKS_TAG] = ",".join(outcome.killed)[:_MAX_VALUE]
    if outcome.status != "FINISHED":
        tags["mlflow.note.content"] = f"Run {outcome.status}: {outcome.describe()}."[:_MAX_VALUE]
    return tags
