"""``kedro mlflow init | ui | modelify | stale-runs | sweep``, registered as project commands.

Nothing here imports ``mlflow`` at module level: ``kedro --help`` loads this module.
"""

from __future__ import annotations

import os
import sys
import webbrowser
from pathlib import Path
from typing import Any

import click

from kedro_mlflow_starter.framework.cli_errors import UserErrorsAsClickErrors
from kedro_mlflow_starter.framework.cli_run import run_group
from kedro_mlflow_starter.framework.cli_sweep import sweep
from kedro_mlflow_starter.framework.modelify import modelify
from kedro_mlflow_starter.framework.project_root import find_project_root


@click.group(name="kedro-mlflow-starter")
def commands() -> None:
    """kedro-mlflow-starter project commands."""


@commands.group(name="mlflow", cls=UserErrorsAsClickErrors)
def mlflow_group() -> None:
    """MLflow tracking for this Kedro project (kedro-mlflow-starter)."""


mlflow_group.add_command(modelify)
mlflow_group.add_command(run_group)
mlflow_group.add_command(sweep)


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
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1),
              help="Server processes (MLflow's own default, 4, starts 2 s slower for one user).")
@click.option("--verbose", "-v", is_flag=True, help="Show the server's own messages, one line per HTTP request.")
def ui(env: str | None, host: str | None, port: int | None, no_browser: bool, workers: int,  # noqa: PLR0913
       verbose: bool) -> None:
    """Open the MLflow UI on this project's experiment (runs and models view).

    For the embedded store it serves the UI itself, and opens the browser once the UI
    answers. A taken port is refused with the port named.
    """
    from kedro_mlflow_starter.framework.ui_server import check_port_free, start_ui, stop
    from kedro_mlflow_starter.tracking.store import file_store_env
    from kedro_mlflow_starter.tracking.ui_url import experiment_url, ui_base

    config = load_project_config(env)
    uri = config.tracking_uri()
    if uri.startswith(("http://", "https://")):
        url = experiment_url(ui_base(uri, "", 0), _experiment_id(config, create=False))
        click.echo(f"This project tracks to a server; its experiment:\n{url}")
        if not no_browser:
            webbrowser.open(url)
        return
    host = host or config.ui.host
    port = port or config.ui.port
    check_port_free(host, port)
    root = Path(config.project_path)
    os.environ.update(file_store_env(uri))
    base = ui_base(uri, host, port)
    url = experiment_url(base, _experiment_id(config, create=True))
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", host,
               "--port", str(port), "--artifacts-destination", str(root / "mlartifacts"), "--workers", str(workers)]
    # MLflow's job runner (GenAI jobs) is of no use to a Kedro project's UI; it starts extra
    # processes and leaves a db_init_lock-<hash> file in the temp folder. Opt back in by
    # exporting MLFLOW_SERVER_ENABLE_JOB_EXECUTION=true.
    os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    click.echo(f"Starting the MLflow UI for {uri} on port {port}...")
    process = start_ui(command, root, dict(os.environ), base, host, port, verbose=verbose)
    try:
        click.echo(f"MLflow UI ready (Ctrl-C to stop):\n{url}")
        if not no_browser:
            webbrowser.open(url)
        code = process.wait()
    except KeyboardInterrupt:
        stop(process)
        click.echo("MLflow UI stopped.")
        code = 0
    finally:
        stop(process)
    sys.exit(code)


def _experiment_id(config: Any, create: bool) -> str | None:
    """The project's experiment id (created for the embedded store, so the link always works);
    None when a server cannot say (the UI then opens on the experiments list)."""
    from kedro_mlflow_starter.tracking.client import client_for

    client = client_for(config.tracking_uri(), config.registry_uri())
    if create:
        from kedro_mlflow_starter.tracking.experiment import ensure_experiment

        return ensure_experiment(client, config)
    try:
        from kedro_mlflow_starter.tracking.store import check_reachable

        check_reachable(config.tracking_uri(), config.server.connect_timeout)
        experiment = client.get_experiment_by_name(config.experiment_name)
    except Exception:  # noqa: BLE001 - the link degrades to the experiments list
        return None
    return experiment.experiment_id if experiment is not None else None


@mlflow_group.command(name="stale-runs")
@click.option("--env", "-e", default=None, help="The Kedro environment whose mlflow.yml to read.")
@click.option("--mark-killed", is_flag=True, help="Mark the runs found as KILLED.")
@click.option("--older-than", default=24.0, show_default=True, type=float,
              help="Also count RUNNING runs from other machines started more than this many hours ago.")
@click.option("--idle-minutes", default=60.0, show_default=True, type=float,
              help="Count a group run (kedro mlflow run open) none of whose tasks was alive for this long.")
def stale_runs(env: str | None, mark_killed: bool, older_than: float, idle_minutes: float) -> None:
    """List runs left RUNNING by a killed `kedro run` (e.g. kill -9), and optionally mark them KILLED."""
    from kedro_mlflow_starter.tracking.stale_runs import find_stale_runs, mark_killed as mark

    config = load_project_config(env)
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
