"""Find runs left RUNNING by a ``kedro run`` that died without closing them (``kill -9``)."""

from __future__ import annotations

import os
import socket
import time
from typing import Any

from kedro_mlflow_starter.config.mlflow_config import MlflowConfig


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def find_stale_runs(config: MlflowConfig, older_than_hours: float) -> list[tuple[Any, str]]:
    """RUNNING runs of the project's experiment whose process is gone, with the reason."""
    from kedro_mlflow_starter.tracking.client import client_for

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
        if host == here and pid and pid.isdigit():
            if not _pid_alive(int(pid)):
                stale.append((run, f"process {pid} on {host} is gone"))
        elif age_hours > older_than_hours:
            stale.append((run, f"started {age_hours:.1f} h ago on {host or 'an unknown host'}"))
    return stale


def mark_killed(config: MlflowConfig, runs: list[Any]) -> None:
    from kedro_mlflow_starter.tracking.client import client_for

    client = client_for(config.tracking_uri(), config.registry_uri())
    for run in runs:
        client.set_terminated(run.info.run_id, status="KILLED")
