"""``kedro mlflow modelify``: log a registered pipeline as a pipeline model, without training.

The model is built from the project's current artifacts (whatever the catalog reads now)
and logged into a new run of the configured experiment, or into ``--run-id``::

    kedro mlflow modelify --pipeline inference --input-name instances
    kedro mlflow modelify --pipeline training --registered-model-name iris   # a PipelineML

For a ``PipelineML`` its inference pipeline and ``input_name`` are used; any other
pipeline is itself the inference pipeline and needs ``--input-name``. Works from any
folder inside the project. ``mlflow`` is imported only when the command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from kedro_mlflow_starter.framework.project_root import find_project_root


def _requirements(values: tuple[str, ...]) -> list[str] | str | None:
    if not values:
        return None
    if len(values) == 1 and Path(values[0]).is_file():
        return str(Path(values[0]).resolve())  # a requirements file, as MLflow accepts it
    return list(values)


@click.command(name="modelify")
@click.option("--pipeline", "-p", "pipeline_name", required=True, help="Name of the registered pipeline to log.")
@click.option(
    "--input-name", "-i", default=None,
    help="The pipeline input that receives the data to predict on (default for a PipelineML: its input_name).",
)
@click.option("--env", "-e", default=None, help="Kedro configuration environment (as in `kedro run --env`).")
@click.option("--run-id", "-r", default=None, help="Log into this existing MLflow run instead of a new one.")
@click.option("--run-name", default=None, help="Name of the new run (default: modelify-<pipeline>).")
@click.option("--model-name", default="model", show_default=True, help="Name of the logged model.")
@click.option("--registered-model-name", default=None, help="Also register the model under this name.")
@click.option(
    "--infer-signature/--no-infer-signature", default=True, show_default=True,
    help="Infer the signature from the first rows of the input dataset.",
)
@click.option(
    "--infer-input-example/--no-infer-input-example", default=True, show_default=True,
    help="Store the first rows of the input dataset as the input example.",
)
@click.option(
    "--pip-requirements", multiple=True,
    help="Requirement (repeatable) or a requirements file, replacing the computed requirements.",
)
@click.option(
    "--extra-pip-requirements", multiple=True,
    help="Requirement (repeatable) or a requirements file, added to the computed requirements.",
)
@click.option(
    "--conda-env", default=None, type=click.Path(exists=True, dir_okay=False),
    help="A conda environment YAML file for the model, instead of pip requirements.",
)
@click.option(
    "--code-paths", "--code-path", "code_paths", multiple=True, type=click.Path(exists=True),
    help="Extra local code (file or folder, repeatable) shipped with the model; the project package always is.",
)
@click.option(
    "--copy-mode", default=None,
    help="How artifacts are handed to the nodes on each predict: assign, copy or deepcopy, or a JSON "
    'object per artifact, e.g. \'{"scaler": "deepcopy"}\'.',
)
@click.option(
    "--await-registration-for", default=None, type=click.IntRange(min=0),
    help="Seconds to wait for the registered model version to become READY.",
)
@click.option(
    "--artifact-path", default=None, hidden=True,
    help="kedro-mlflow's name for --model-name (MLflow 3 calls it `name`).",
)
def modelify(  # noqa: PLR0913
    pipeline_name: str,
    input_name: str | None,
    env: str | None,
    run_id: str | None,
    run_name: str | None,
    model_name: str,
    registered_model_name: str | None,
    infer_signature: bool,
    infer_input_example: bool,
    pip_requirements: tuple[str, ...],
    extra_pip_requirements: tuple[str, ...],
    conda_env: str | None,
    code_paths: tuple[str, ...],
    copy_mode: str | None,
    await_registration_for: int | None,
    artifact_path: str | None,
) -> None:
    """Log a registered pipeline as an MLflow pipeline model from the current artifacts."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    if run_id and run_name:
        raise click.UsageError("--run-id logs into an existing run and --run-name names a new one: give only one.")
    if conda_env and (pip_requirements or extra_pip_requirements):
        raise click.UsageError("--conda-env replaces pip requirements: give it, or --pip-requirements / "
                               "--extra-pip-requirements, not both.")
    if artifact_path:
        click.echo("Warning: --artifact-path is kedro-mlflow's name for --model-name (MLflow 3 logs models by "
                   "name); it is used as the model name.", err=True)
        model_name = artifact_path
    modes = _copy_mode(copy_mode)
    root = find_project_root()
    metadata = bootstrap_project(root)
    with KedroSession.create(project_path=root, env=env) as session:
        context = session.load_context()
        pipeline, input_name = _pipeline_and_input(pipeline_name, input_name)
        catalog = context.catalog
        config = _mlflow_config(context, root, metadata.package_name)
        model = _build_model(pipeline, catalog, input_name, modes)
        model_uri, used_run = _log(
            model, catalog, config, run_id, run_name or f"modelify-{pipeline_name}",
            name=model_name,
            registered_model_name=registered_model_name,
            signature="auto" if infer_signature else None,
            input_example="auto" if infer_input_example else None,
            pip_requirements=_requirements(pip_requirements),
            extra_pip_requirements=_requirements(extra_pip_requirements),
            conda_env=str(Path(conda_env).resolve()) if conda_env else None,
            code_paths=[str(Path(path).resolve()) for path in code_paths] or None,
            await_registration_for=await_registration_for,
        )
    click.echo(f"Logged pipeline '{pipeline_name}' as {model_uri} (MLflow run {used_run}).")
    if registered_model_name:
        click.echo(f"Registered as '{registered_model_name}'.")
    click.echo(f"Serve it with: mlflow models serve -m {model_uri} --env-manager local")


def _pipeline_and_input(pipeline_name: str, input_name: str | None) -> tuple[Any, str]:
    from kedro.framework.project import pipelines

    from kedro_mlflow_starter.pipeline import PipelineML

    try:
        pipeline = pipelines[pipeline_name]
    except KeyError:
        available = ", ".join(sorted(pipelines.keys())) or "none"
        raise click.ClickException(
            f"No pipeline named '{pipeline_name}' is registered. Registered pipelines: {available}."
        ) from None
    if isinstance(pipeline, PipelineML):
        return pipeline.inference, input_name or pipeline.input_name
    if input_name is None:
        inputs = ", ".join(sorted(i for i in pipeline.inputs() if not i.startswith("params:") and i != "parameters"))
        raise click.UsageError(
            f"'{pipeline_name}' is not a PipelineML: give --input-name, the input that receives the data to "
            f"predict on. Its inputs: {inputs}."
        )
    return pipeline, input_name


def _mlflow_config(context: Any, root: Path, package_name: str) -> Any:
    from kedro_mlflow_starter.config import load_mlflow_config

    config = getattr(context, "mlflow", None)
    return config if config is not None else load_mlflow_config(context.config_loader, root, package_name)


def _copy_mode(value: str | None) -> str | dict[str, str] | None:
    """``--copy-mode``: one mode for every artifact, or a JSON object of artifact -> mode."""
    if value is None or not value.lstrip().startswith("{"):
        return value
    import json

    try:
        modes = json.loads(value)
    except json.JSONDecodeError as error:
        raise click.BadParameter(f"not valid JSON ({error.msg}): {value}", param_hint="--copy-mode") from None
    return modes


def _build_model(pipeline: Any, catalog: Any, input_name: str, copy_mode: Any = None) -> Any:
    from kedro_mlflow_starter.errors import KedroMlflowPipelineMLError
    from kedro_mlflow_starter.models import KedroPipelineModel

    try:
        return KedroPipelineModel(pipeline, catalog, input_name, copy_mode=copy_mode)
    except (KedroMlflowPipelineMLError, TypeError) as error:
        raise KedroMlflowPipelineMLError(f"Cannot modelify with --input-name {input_name}: {error}") from error


def _log(model: Any, catalog: Any, config: Any, run_id: str | None, run_name: str, **kwargs: Any) -> tuple[str, str]:
    from kedro_mlflow_starter.models.logging import log_kedro_pipeline_model
    from kedro_mlflow_starter.tracking.run import TrackedRun

    if run_id:
        run = TrackedRun.attach(config, run_id)
    else:
        run = TrackedRun.create(config, run_name, {"kedro.command": "modelify"})
    run.publish()
    try:
        model_uri = log_kedro_pipeline_model(model, catalog, run.run_id, **kwargs)
    except BaseException:
        run.close("FAILED")
        raise
    run.close("FINISHED", model_uri=model_uri)
    return model_uri, run.run_id
