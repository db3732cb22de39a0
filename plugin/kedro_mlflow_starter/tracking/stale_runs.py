"""Runs left RUNNING by a ``kedro run`` that died without closing them (``kill -9``)."""

from __future__ import annotations

import os
import socket
import time
from typing import TYPE_CHECKING

from kedro_mlflow_starter.config.mlflow_config import MlflowConfig
from kedro_mlflow_starter.tracking.client import client_for
from kedro_mlflow_starter.tracking.orchestrated import is_orchestrated, last_seen_ms
from kedro_mlflow_starter.tracking.pending_models import fail_pending_models

if TYPE_CHECKING:  # pragma: no cover
    from mlflow.entities import Run


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def find_stale_runs(config: MlflowConfig, older_than_hours: float, idle_minutes: float = 60.0) -> list[tuple[Run, str]]:
    """RUNNING runs of the project's experiment whose process is gone, with the reason: judged by
    ``kedro.host``/``kedro.pid`` on this machine, by age on another, and a group run by its tasks'
    heartbeat (none for ``idle_minutes``)."""
    client = client_for(config.tracking_uri(), config.registry_uri())
    experiment = client.get_experiment_by_name(config.experiment_name)
    if experiment is None:
        return []
    runs = client.search_runs([experiment.experiment_id], filter_string="attributes.status = 'RUNNING'",
                              max_results=1000)
    here = socket.gethostname()
    stale = []
    for run in runs:
        host = run.data.tags.get("kedro.host")
        pid = run.data.tags.get("kedro.pid")
        age_hours = (time.time() * 1000 - run.info.start_time) / 3_600_000
        if is_orchestrated(run.data.tags):
            idle = (time.time() * 1000 - last_seen_ms(run.data.tags, run.info.start_time)) / 60_000
            if idle > idle_minutes:
                stale.append((run, f"group run: no task alive for {idle:.0f} min and never closed "
                                   "(kedro mlflow run close)"))
        elif host == here and pid and pid.isdigit():
            if not _pid_alive(int(pid)):
                stale.append((run, f"process {pid} on {host} is gone"))
        elif age_hours > older_than_hours:
            stale.append((run, f"started {age_hours:.1f} h ago on {host or 'an unknown host'}"))
    return stale


def mark_killed(config: MlflowConfig, runs: list[Run]) -> None:
    client = client_for(config.tracking_uri(), config.registry_uri())
    for run in runs:
        fail_pending_models(client, run.info.experiment_id, run.info.run_id)
        client.set_terminated(run.info.run_id, status="KILLED")
