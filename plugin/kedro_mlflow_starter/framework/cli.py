"""``kedro mlflow init | ui | modelify | stale-runs``, registered as project commands.

Nothing here imports ``mlflow`` at module level: ``kedro --help`` loads this module.
"""

from __future__ import annotations

import os
import subprocess
import sys
import webbrowser
from pathlib import Path
from typing import Any

import click

from kedro_mlflow_starter.framework.cli_errors import UserErrorsAsClickErrors
from kedro_mlflow_starter.framework.modelify import modelify
from kedro_mlflow_starter.framework.project_root import find_project_root


@click.group(name="kedro-mlflow-starter")
def commands() -> None:
    """kedro-mlflow-starter project commands."""


@commands.group(name="mlflow", cls=UserErrorsAsClickErrors)
def mlflow_group() -> None:
    """MLflow tracking for this Kedro project (kedro-mlflow-starter)."""


mlflow_group.add_command(modelify)


def load_project_config(env: str | None) -> Any:
    """The validated mlflow.yml of the current project (the hook need not be enabled)."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    from kedro_mlflow_starter.config import load_mlflow_config

    root = find_project_root()
    metadata = bootstrap_project(root)
    with KedroSession.create(project_path=root, env=env) as session:
        context = session.load_context()
        config = getattr(context, "mlflow", None)
        if config is None:  # the project opted out of the hook
            config = load_mlflow_config(context.config_loader, root, metadata.package_name)
    return config


@mlflow_group.command()
@click.option("--env", "-e", default="base", show_default=True, help="The conf/ folder to write mlflow.yml into.")
@click.option("--force", is_flag=True, help="Overwrite an existing mlflow.yml.")
def init(env: str, force: bool) -> None:
    """Write the documented mlflow.yml into conf/<env>/."""
    from kedro.framework.startup import bootstrap_project

    from kedro_mlflow_starter.templates import mlflow_schema_template, render_mlflow_yml

    root = find_project_root()
    metadata = bootstrap_project(root)
    from kedro.framework.project import settings

    conf_source = Path(settings.CONF_SOURCE)
    conf_dir = (conf_source if conf_source.is_absolute() else root / conf_source) / env
    target = conf_dir / "mlflow.yml"
    if not conf_dir.is_dir():
        existing = sorted(p.name for p in conf_dir.parent.iterdir() if p.is_dir()) if conf_dir.parent.is_dir() else []
        raise click.ClickException(
            f"Environment '{env}' does not exist: there is no folder {conf_dir.relative_to(root) if conf_dir.is_relative_to(root) else conf_dir}. "
            f"Choose an existing one ({', '.join(existing) or 'none found'}) with --env, or create the folder first."
        )
    if target.exists() and not force:
        raise click.ClickException(f"{target} already exists. Use --force to overwrite it.")
    target.write_text(render_mlflow_yml(metadata.package_name), encoding="utf-8")
    schema = conf_dir.parent / "mlflow.schema.json"  # what the file's first line points editors at
    if force or not schema.exists():
        schema.write_text(mlflow_schema_template().read_text(encoding="utf-8"), encoding="utf-8")
    click.secho(f"Wrote {target.relative_to(root)}. `kedro run` now logs to MLflow; `kedro mlflow ui` opens it.",
                fg="green")


@mlflow_group.command()
@click.option("--env", "-e", default=None, help="The Kedro environment whose mlflow.yml to read.")
@click.option("--host", default=None, help="Host to serve the UI on (default: ui.host, 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port to serve the UI on (default: ui.port, 5000).")
@click.option("--no-browser", is_flag=True, help="Do not open a web browser.")
def ui(env: str | None, host: str | None, port: int | None, no_browser: bool) -> None:
    """Open the MLflow UI on this project's tracking store."""
    config = load_project_config(env)
    uri = config.tracking_uri()
    if uri.startswith(("http://", "https://")):
        click.echo(f"This project tracks to {uri}; open it in your browser.")
        if not no_browser:
            webbrowser.open(uri)
        return
    host = host or config.ui.host
    port = port or config.ui.port
    root = Path(config.project_path)
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", host,
               "--port", str(port), "--artifacts-destination", str(root / "mlartifacts")]
    from kedro_mlflow_starter.tracking.store import file_store_env

    os.environ.update(file_store_env(uri))
    # MLflow's job runner (GenAI jobs) is of no use to a Kedro project's UI; it starts extra
    # processes and leaves a db_init_lock-<hash> file in the temp folder. Opt back in by
    # exporting MLFLOW_SERVER_ENABLE_JOB_EXECUTION=true.
    os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    click.echo(f"MLflow UI for {uri} at http://{host}:{port} (Ctrl-C to stop)")
    if not no_browser:
        webbrowser.open(f"http://{host}:{port}")
    try:
        sys.exit(subprocess.call(command, cwd=root))
    except KeyboardInterrupt:
        sys.exit(0)


@mlflow_group.command(name="stale-runs")
@click.option("--env", "-e", default=None, help="The Kedro environment whose mlflow.yml to read.")
@click.option("--mark-killed", is_flag=True, help="Mark the runs found as KILLED.")
@click.option("--older-than", default=24.0, show_default=True, type=float,
              help="Also count RUNNING runs from other machines started more than this many hours ago.")
def stale_runs(env: str | None, mark_killed: bool, older_than: float) -> None:
    """List runs left RUNNING by a killed `kedro run` (e.g. kill -9), and optionally mark them KILLED."""
    from kedro_mlflow_starter.tracking.stale_runs import find_stale_runs, mark_killed as mark

    config = load_project_config(env)
    stale = find_stale_runs(config, older_than_hours=older_than)
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
