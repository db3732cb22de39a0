"""``kedro mlflow stale-runs``: runs left RUNNING by a killed ``kedro run``, optionally marked KILLED."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from kedro_mlflow_starter.framework.project_session import project_config, project_metadata
from kedro_mlflow_starter.tracking.stale_runs import find_stale_runs, mark_killed as mark

if TYPE_CHECKING:
    from kedro.framework.startup import ProjectMetadata


@click.command(name="stale-runs")
@click.option("--env", "-e", default=None, help="The Kedro environment whose mlflow.yml to read.")
@click.option("--mark-killed", is_flag=True, help="Mark the runs found as KILLED.")
@click.option("--older-than", default=24.0, show_default=True, type=float,
              help="Also count RUNNING runs from other machines started more than this many hours ago.")
@click.option("--idle-minutes", default=60.0, show_default=True, type=float,
              help="Count a group run (kedro mlflow run open) none of whose tasks was alive for this long.")
@click.pass_obj
def stale_runs(metadata: ProjectMetadata | None, env: str | None, mark_killed: bool, older_than: float,
               idle_minutes: float) -> None:
    """List runs left RUNNING by a killed `kedro run` (e.g. kill -9), and optionally mark them KILLED."""
    config = project_config(project_metadata(metadata), env)
    stale = find_stale_runs(config, older_than_hours=older_than, idle_minutes=idle_minutes)
    if not stale:
        click.echo("No stale runs: every RUNNING run belongs to a live process.")
        return
    for run, reason in stale:
        click.echo(f"{run.info.run_id}  {run.info.run_name}  ({reason})")
    if mark_killed:
        mark(config, [run for run, _ in stale])
        click.echo(f"Marked {len(stale)} run(s) KILLED.")
    else:
        click.echo("Run again with --mark-killed to mark them KILLED.")
