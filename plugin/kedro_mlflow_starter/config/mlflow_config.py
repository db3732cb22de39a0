"""The pydantic model of ``mlflow.yml``: kedro-mlflow 2.x's keys and ours (descriptions feed the editor schema)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from kedro_mlflow_starter.config.redaction import DEFAULT_SECRET_PATTERNS
from kedro_mlflow_starter.config.uris import resolve_registry_uri, resolve_tracking_uri


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class RequestHeaderProviderConfig(_Strict):
    type: str | None = Field(
        default=None, description="Dotted path of a class derived from MLflow's RequestHeaderProvider.")
    pass_context: bool = Field(default=False, description="Pass the Kedro context to the class as `kedro_context=`.")
    init_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Keyword arguments the class is created with.")


class ServerConfig(_Strict):
    mlflow_tracking_uri: str | None = Field(
        default=None, description="Where runs are stored. Empty: $MLFLOW_TRACKING_URI, else the embedded store "
        "sqlite:///<project root>/mlflow.db (artifacts in <project root>/mlartifacts). Relative sqlite paths resolve "
        "against the project root. For a team server: http(s)://host:port; never put a password here, use "
        "`credentials`.")
    mlflow_registry_uri: str | None = Field(
        default=None, description="Where models are registered. Empty: the tracking URI.")
    credentials: str | None = Field(
        default=None, description="The name of an entry of credentials.yml whose keys are exported as environment "
        "variables for MLflow (MLFLOW_TRACKING_USERNAME, MLFLOW_TRACKING_PASSWORD, MLFLOW_TRACKING_TOKEN, "
        "AWS_ACCESS_KEY_ID...). Never logged.")
    request_header_provider: RequestHeaderProviderConfig = Field(
        default_factory=RequestHeaderProviderConfig, description="kedro-mlflow's key: a class (`type`, a dotted path) "
        "adding headers such as a refreshed token to every request MLflow sends; `init_kwargs` are passed to it. "
        "Empty: no provider.")
    on_unreachable: Literal["fail", "run_untracked"] = Field(
        default="fail", description="When the tracking store cannot be reached as `kedro run` starts: fail (stop "
        "before any node runs) or run_untracked (run the pipeline without MLflow and say so).")
    connect_timeout: float = Field(
        default=10.0, gt=0, description="Seconds to wait for a remote tracking server's health check.")


class DisableTrackingConfig(_Strict):
    pipelines: list[str] = Field(
        default_factory=list, description="Pipelines that are never tracked: `kedro run --pipelines <name>` opens no "
        "run.")
    disable_autologging: bool = Field(
        default=True, description="Turn MLflow autologging off during tracked runs (it would log a second copy), "
        "unless tracking.autolog.enabled turns it on.")


class CreateExperimentKwargs(_Strict):
    artifact_location: str | None = Field(
        default=None, description="Where the experiment stores artifacts. Empty: <project root>/mlartifacts for a "
        "local store, the server's default for a remote one.")
    tags: dict[str, str] | None = Field(default=None, description="Tags set on the experiment when it is created.")

    @field_validator("tags", mode="before")
    @classmethod
    def _stringify_tags(cls, tags: Any) -> Any:
        """MLflow stores tag values as strings: ``version: 2`` is accepted as ``"2"``."""
        if isinstance(tags, dict):
            return {key: value if isinstance(value, str) or value is None else str(value)
                    for key, value in tags.items()}
        return tags


class ExperimentConfig(_Strict):
    name: str | None = Field(
        default=None, description="The experiment runs are logged to (created when missing). Empty: the package name.")
    create_experiment_kwargs: CreateExperimentKwargs = Field(
        default_factory=CreateExperimentKwargs, description="Arguments used when the experiment is created.")
    restore_if_deleted: bool = Field(
        default=True, description="Restore the experiment if it was deleted (otherwise `kedro run` fails).")


class RunConfig(_Strict):
    id: str | None = Field(default=None, description="Log into this existing run instead of starting a new one.")
    name: str | None = Field(
        default=None, description="The run name. Empty: the pipeline names joined by '+' and the local time the run "
        "started (e.g. 'default 15:32:08'). ${km.random_name:} gives a random MLflow-style name.")
    nested: bool = Field(
        default=True, description="When a run is already active in the process (e.g. an orchestrator started it), log "
        "into it and leave it open at the end.")


class DictParamsConfig(_Strict):
    flatten: bool = Field(
        default=False, description="Log dict parameters as one entry per leaf key (\"model.alpha\") instead of one "
        "string.")
    recursive: bool = Field(default=True, description="With flatten: also flatten dicts nested in dicts.")
    sep: str = Field(default=".", description="The separator between the parts of a flattened key.")


class ParamsConfig(_Strict):
    dict_params: DictParamsConfig = Field(default_factory=DictParamsConfig, description="How dict parameters are logged.")
    long_params_strategy: Literal["fail", "truncate", "tag"] = Field(
        default="fail", description="A parameter value longer than MLflow's 6000 characters: fail (stop before any "
        "node runs), truncate (log the first 6000), or tag (log it as a tag).")
    secret_patterns: list[str] = Field(
        default_factory=lambda: list(DEFAULT_SECRET_PATTERNS), description="Parameters whose name contains one of "
        "these (case-insensitive) are logged as '***'.")


class LineageConfig(_Strict):
    datasets: bool = Field(
        default=True, description="Log the datasets the pipeline reads from outside as MLflow dataset inputs (name, "
        "source, digest, schema, row count, load version) and link evaluation data to the metrics computed on it.")
    config: bool = Field(
        default=True, description="Log the resolved parameters and the catalog entries the pipeline used (secrets "
        "removed) as artifacts under kedro/config/.")
    node_timings: bool = Field(
        default=True, description="Log each node's wall time and the pipeline's as metrics (time.node.<name>).")
    pipeline_graph: bool = Field(
        default=True, description="Log the pipeline's structure: Kedro's JSON (kedro/pipeline.json) and a picture the "
        "MLflow UI shows (kedro/pipeline.svg).")


class AutologConfig(_Strict):
    enabled: bool = Field(
        default=False, description="Turn on mlflow.autolog() for tracked runs: what the ML libraries' fit calls log "
        "(their params, metrics, training datasets) lands in the Kedro run, under every runner. Takes precedence over "
        "disable_tracking.disable_autologging.")
    log_models: bool = Field(
        default=False, description="Also let autologging log a model at each fit. Off: the catalog's model datasets "
        "(and the pipeline model) are the run's models, so no second, unnamed copy is logged.")
    log_datasets: bool = Field(default=True, description="Log the data each fit was given as dataset inputs.")
    log_input_examples: bool = Field(default=False, description="With log_models: log an input example.")
    log_model_signatures: bool = Field(default=True, description="With log_models: log the model's signature.")
    log_traces: bool = Field(default=True, description="Log traces of GenAI libraries (OpenAI, LangChain...).")
    disable_for_unsupported_versions: bool = Field(
        default=False, description="Skip libraries whose installed version MLflow has not tested.")
    exclude_flavors: list[str] = Field(
        default_factory=list, description="Libraries not to autolog, e.g. [lightgbm, tensorflow].")
    extra_tags: dict[str, str] | None = Field(default=None, description="Tags autologging adds to the run.")
    silent: bool = Field(default=False, description="Hide MLflow's autologging warnings and messages.")

    def autolog_kwargs(self) -> dict[str, Any]:
        """The arguments of ``mlflow.autolog`` (never ``exclusive``: the Kedro run is the run)."""
        return self.model_dump(exclude={"enabled"})


class SystemMetricsConfig(_Strict):
    enabled: bool = Field(
        default=False, description="Log system metrics (system/cpu_utilization_percentage, "
        "system/system_memory_usage_megabytes, disk and network...) into the run while the pipeline runs, with "
        "MLflow's system metrics monitor. Needs psutil (pip install psutil; GPU metrics also need pynvml).")
    sampling_interval: float = Field(default=10.0, gt=0, description="Seconds between two samples.")
    samples_before_logging: int = Field(
        default=1, ge=1, description="Samples averaged into each logged value (one log call per that many samples).")


class TrackingConfig(_Strict):
    disable_tracking: DisableTrackingConfig = Field(default_factory=DisableTrackingConfig, description="Runs that are not tracked.")
    experiment: ExperimentConfig = Field(default_factory=ExperimentConfig, description="The experiment runs are logged to.")
    run: RunConfig = Field(default_factory=RunConfig, description="The run each `kedro run` logs into.")
    params: ParamsConfig = Field(default_factory=ParamsConfig, description="How parameters are logged.")
    lineage: LineageConfig = Field(
        default_factory=LineageConfig, description="What a run records about what it was made from.")
    autolog: AutologConfig = Field(
        default_factory=AutologConfig, description="MLflow autologging into the Kedro run (off by default).")
    system_metrics: SystemMetricsConfig = Field(
        default_factory=SystemMetricsConfig, description="System metrics of the run (off by default).")


class UiConfig(_Strict):
    host: str = Field(default="127.0.0.1", description="Where `kedro mlflow ui` serves the MLflow UI.")
    port: int = Field(default=5000, ge=1, le=65535, description="The port `kedro mlflow ui` serves on.")


class MlflowConfig(_Strict):
    server: ServerConfig = Field(default_factory=ServerConfig, description="Where runs and models are stored.")
    tracking: TrackingConfig = Field(default_factory=TrackingConfig, description="What a tracked `kedro run` logs and where.")
    ui: UiConfig = Field(default_factory=UiConfig, description="Where `kedro mlflow ui` serves.")

    project_path: Path | None = Field(default=None, exclude=True)
    package_name: str | None = Field(default=None, exclude=True)

    @property
    def experiment_name(self) -> str:
        return self.tracking.experiment.name or self.package_name or "Default"

    def tracking_uri(self) -> str:
        return resolve_tracking_uri(self.server.mlflow_tracking_uri, self.project_path)

    def registry_uri(self) -> str | None:
        return resolve_registry_uri(self.server.mlflow_registry_uri, self.project_path)
