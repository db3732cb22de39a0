"""``kedro mlflow init``: write the documented ``mlflow.yml`` (and its JSON schema) into ``conf/<env>/``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click
from kedro.framework.project import settings

from kedro_mlflow_starter.framework.project_session import project_metadata
from kedro_mlflow_starter.templates import mlflow_schema_template, render_mlflow_yml

if TYPE_CHECKING:
    from kedro.framework.startup import ProjectMetadata


@click.command()
@click.option("--env", "-e", default="base", show_default=True, help="The conf/ folder to write mlflow.yml into.")
@click.option("--force", is_flag=True, help="Overwrite an existing mlflow.yml.")
@click.pass_obj
def init(metadata: ProjectMetadata | None, env: str, force: bool) -> None:
    """Write the documented mlflow.yml into conf/<env>/."""
    metadata = project_metadata(metadata)
    root = metadata.project_path
    conf_dir = root / settings.CONF_SOURCE / env  # an absolute CONF_SOURCE stays itself
    target = conf_dir / "mlflow.yml"
    if not conf_dir.is_dir():
        existing = sorted(p.name for p in conf_dir.parent.iterdir() if p.is_dir()) if conf_dir.parent.is_dir() else []
        raise click.ClickException(
            f"Environment '{env}' does not exist: there is no folder "
            f"{conf_dir.relative_to(root) if conf_dir.is_relative_to(root) else conf_dir}. "
            f"Choose an existing one ({', '.join(existing) or 'none found'}) with --env, or create the folder first.")
    if target.exists() and not force:
        raise click.ClickException(f"{target} already exists. Use --force to overwrite it.")
    target.write_text(render_mlflow_yml(metadata.package_name), encoding="utf-8")
    schema = conf_dir.parent / "mlflow.schema.json"  # what the file's first line points editors at
    if force or not schema.exists():
        schema.write_text(mlflow_schema_template().read_text(encoding="utf-8"), encoding="utf-8")
    click.secho(f"Wrote {target.relative_to(root)}. `kedro run` now logs to MLflow; `kedro mlflow ui` opens it.",
                fg="green")
