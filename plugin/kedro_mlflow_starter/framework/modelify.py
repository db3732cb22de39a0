"""``kedro mlflow modelify``: log a registered pipeline as a pipeline model from the current artifacts, without training."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click
from kedro.framework.project import pipelines

from kedro_mlflow_starter import models
from kedro_mlflow_starter.config.redaction import redact_uri
from kedro_mlflow_starter.errors import KedroMlflowPipelineMLError
from kedro_mlflow_starter.framework.project_session import project_metadata, project_session
from kedro_mlflow_starter.kedro_names import is_parameter
from kedro_mlflow_starter.models.logging import log_kedro_pipeline_model
from kedro_mlflow_starter.pipeline import PipelineML
from kedro_mlflow_starter.tracking.registration_prints import mlflow_prints_logged
from kedro_mlflow_starter.tracking.run import TrackedRun

if TYPE_CHECKING:
    from kedro.framework.startup import ProjectMetadata


def _requirements(values: tuple[str, ...]) -> list[str] | str | None:
    if len(values) == 1 and Path(values[0]).is_file():
        return str(Path(values[0]).resolve())  # a requirements file, as MLflow accepts it
    return list(values) or None


def _copy_mode(ctx: click.Context, param: click.Parameter, value: str | None) -> str | dict[str, str] | None:
    """``--copy-mode``: one mode for every artifact, or a JSON object of artifact -> mode."""
    if value is None or not value.lstrip().startswith("{"):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as error:
        raise click.BadParameter(f"not valid JSON ({error.msg}): {value}", param_hint="--copy-mode") from None


@click.command(name="modelify")
@click.option("--pipeline", "-p", "pipeline_name", required=True, help="Name of the registered pipeline to log.")
@click.option("--input-name", "-i", default=None,
              help="The pipeline input that receives the data to predict on (default for a PipelineML: its input_name).")
@click.option("--env", "-e", default=None, help="Kedro configuration environment (as in `kedro run --env`).")
@click.option("--run-id", "-r", default=None, help="Log into this existing MLflow run instead of a new one.")
@click.option("--run-name", default=None, help="Name of the new run (default: modelify-<pipeline>).")
@click.option("--model-name", default="model", show_default=True, help="Name of the logged model.")
@click.option("--registered-model-name", default=None, help="Also register the model under this name.")
@click.option("--infer-signature/--no-infer-signature", default=True, show_default=True,
              help="Infer the signature from the first rows of the input dataset.")
@click.option("--infer-input-example/--no-infer-input-example", default=True, show_default=True,
              help="Store the first rows of the input dataset as the input example.")
@click.option("--pip-requirements", multiple=True,
              help="Requirement (repeatable) or a requirements file, replacing the computed requirements.")
@click.option("--extra-pip-requirements", multiple=True,
              help="Requirement (repeatable) or a requirements file, added to the computed requirements.")
@click.option("--conda-env", default=None, type=click.Path(exists=True, dir_okay=False, resolve_path=True),
              help="A conda environment YAML file for the model, instead of pip requirements.")
@click.option("--code-paths", "--code-path", "code_paths", multiple=True, type=click.Path(exists=True, resolve_path=True),
              help="Extra local code (file or folder, repeatable) shipped with the model; the project package always is.")
@click.option("--copy-mode", default=None, callback=_copy_mode,
              help="How artifacts are handed to the nodes on each predict: assign, copy or deepcopy, or a JSON "
                   'object per artifact, e.g. \'{"scaler": "deepcopy"}\'.')
@click.option("--await-registration-for", default=None, type=click.IntRange(min=0),
              help="Seconds to wait for the registered model version to become READY.")
@click.option("--artifact-path", default=None, hidden=True,
              help="kedro-mlflow's name for --model-name (MLflow 3 calls it `name`).")
@click.pass_obj
def modelify(  # noqa: PLR0913
    metadata: ProjectMetadata | None, pipeline_name: str, input_name: str | None, env: str | None, run_id: str | None,
    run_name: str | None, model_name: str, registered_model_name: str | None, infer_signature: bool,
    infer_input_example: bool, pip_requirements: tuple[str, ...], extra_pip_requirements: tuple[str, ...],
    conda_env: str | None, code_paths: tuple[str, ...], copy_mode: str | dict[str, str] | None,
    await_registration_for: int | None, artifact_path: str | None,
) -> None:
    """Log a registered pipeline as an MLflow pipeline model from the current artifacts."""
    if run_id and run_name:
        raise click.UsageError("--run-id logs into an existing run and --run-name names a new one: give only one.")
    if conda_env and (pip_requirements or extra_pip_requirements):
        raise click.UsageError("--conda-env replaces pip requirements: give it, or --pip-requirements / "
                               "--extra-pip-requirements, not both.")
    if artifact_path:
        click.echo("Warning: --artifact-path is kedro-mlflow's name for --model-name (MLflow 3 logs models by "
                   "name); it is used as the model name.", err=True)
        model_name = artifact_path
    with project_session(project_metadata(metadata), env) as (_, context, config):
        if pipeline_name not in pipelines:
            raise click.ClickException(f"No pipeline named '{pipeline_name}' is registered. Registered pipelines: "
                                       f"{', '.join(sorted(pipelines.keys())) or 'none'}.")
        pipeline = pipelines[pipeline_name]
        if isinstance(pipeline, PipelineML):
            pipeline, input_name = pipeline.inference, input_name or pipeline.input_name
        elif input_name is None:
            inputs = ", ".join(sorted(name for name in pipeline.inputs() if not is_parameter(name)))
            raise click.UsageError(f"'{pipeline_name}' is not a PipelineML: give --input-name, the input that "
                                   f"receives the data to predict on. Its inputs: {inputs}.")
        catalog = context.catalog
        try:
            model = models.KedroPipelineModel(pipeline, catalog, input_name, copy_mode=copy_mode)
        except (KedroMlflowPipelineMLError, TypeError) as error:
            raise KedroMlflowPipelineMLError(f"Cannot modelify with --input-name {input_name}: {error}") from error
        missing = [name for name in model.artifact_names if not catalog.exists(name)]
        if missing:  # checked before a run is created: a failed modelify leaves no empty run behind
            raise KedroMlflowPipelineMLError(
                f"Cannot modelify pipeline '{pipeline_name}': its artifact(s) {', '.join(missing)} do not exist yet "
                f"(the model packs them). Produce them first, e.g. `kedro run --to-outputs={','.join(missing)}`, "
                "then run modelify again.")
        run = (TrackedRun.attach(config, run_id) if run_id
               else TrackedRun.create(config, run_name or f"modelify-{pipeline_name}", {"kedro.command": "modelify"}))
        run.publish()
        try:
            with mlflow_prints_logged():
                model_uri = log_kedro_pipeline_model(
                    model, catalog, run.run_id, name=model_name, registered_model_name=registered_model_name,
                    signature="auto" if infer_signature else None, input_example="auto" if infer_input_example else None,
                    pip_requirements=_requirements(pip_requirements),
                    extra_pip_requirements=_requirements(extra_pip_requirements),
                    conda_env=conda_env, code_paths=list(code_paths) or None, await_registration_for=await_registration_for)
        except BaseException:
            run.close("FAILED")
            raise
        run.close("FINISHED", model_uri=model_uri)
    click.echo(f"Logged pipeline '{pipeline_name}' as {model_uri} (MLflow run {run.run_id}).")
    if registered_model_name:
        click.echo(f"Registered as '{registered_model_name}'.")
    # from any folder: the model lives in the project's store, which MLflow's default (./mlflow.db) is not
    click.echo(f"Serve it with:\n  export MLFLOW_TRACKING_URI={redact_uri(config.tracking_uri())}\n"
               f"  mlflow models serve -m {model_uri} --env-manager local")
