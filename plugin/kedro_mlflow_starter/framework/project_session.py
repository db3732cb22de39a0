"""The Kedro project of a ``kedro mlflow`` command: Kedro's ``ProjectMetadata``, and one session of it."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from kedro.framework.startup import ProjectMetadata, bootstrap_project

from kedro_mlflow_starter.config import load_mlflow_config
from kedro_mlflow_starter.tracking.current import PublishedEnvironment
from kedro_mlflow_starter.tracking.store import file_store_env, http_retry_env

if TYPE_CHECKING:
    from kedro.framework.context import KedroContext
    from kedro.framework.session import KedroSession

    from kedro_mlflow_starter.config import MlflowConfig

Project = ProjectMetadata | str | os.PathLike[str]  # the metadata Kedro's CLI gives, or a project folder


def project_metadata(metadata: ProjectMetadata | None) -> ProjectMetadata:
    """What Kedro's CLI passes its project commands as ``obj``; outside a project, a ClickException."""
    if metadata is None:
        raise click.ClickException(
            f"No Kedro project found in {Path.cwd()} or its parents (looked for a pyproject.toml with a "
            "[tool.kedro] section). Run this command inside a Kedro project."
        )
    return metadata


@contextmanager
def project_session(
    project: Project, env: str | None = None, conf_source: str | None = None,
    runtime_params: Mapping[str, Any] | None = None,
) -> Iterator[tuple[KedroSession, KedroContext, MlflowConfig]]:
    """A session of the project (bootstrapped first when given a path), its context and ``mlflow.yml``
    (read even if the project opted out of the hook), with MLflow pointed at that store meanwhile."""
    from kedro.framework.session import KedroSession

    metadata = project if isinstance(project, ProjectMetadata) else bootstrap_project(Path(project).resolve())
    published = PublishedEnvironment()
    with KedroSession.create(project_path=metadata.project_path, env=env, conf_source=conf_source or None,
                             runtime_params=dict(runtime_params or {})) as session:
        context = session.load_context()
        config = getattr(context, "mlflow", None) or load_mlflow_config(
            context.config_loader, metadata.project_path, metadata.package_name)
        published.set({**http_retry_env(), **file_store_env(config.tracking_uri())})
        published.store(config.tracking_uri(), config.registry_uri())
        try:
            yield session, context, config
        finally:
            published.restore()


def project_config(project: Project, env: str | None = None) -> MlflowConfig:
    """The project's validated ``mlflow.yml`` for ``env``."""
    with project_session(project, env) as (_, _, config):
        return config
