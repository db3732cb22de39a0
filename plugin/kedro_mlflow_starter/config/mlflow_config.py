"""The pydantic model of ``mlflow.yml`` (keys compatible with kedro-mlflow 2.x).

Every key is documented in the shipped file ``conf/base/mlflow.yml`` of the starter;
defaults here are the ones that file states.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from kedro_mlflow_starter.config.redaction import DEFAULT_SECRET_PATTERNS

class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class RequestHeaderProviderConfig(_Strict):
    """kedro-mlflow's key: a class adding headers (e.g. a refreshed token) to every request."""

    type: str | None = None
    pass_context: bool = False
    init_kwargs: dict[str, Any] = Field(default_factory=dict)


class ServerConfig(_Strict):
    mlflow_tracking_uri: str | None = None
    mlflow_registry_uri: str | None = None
    credentials: str | None = None
    request_header_provider: RequestHeaderProviderConfig = Field(default_factory=RequestHeaderProviderConfig)
    # Ours: what to do when the tracking store cannot be reached when `kedro run` starts.
    on_unreachable: Literal["fail", "run_untracked"] = "fail"
    # Ours: seconds to wait for a remote tracking server before giving up.
    connect_timeout: float = Field(default=10.0, gt=0)


class DisableTrackingConfig(_Strict):
    pipelines: list[str] = Field(default_factory=list)
    disable_autologging: bool = True


class CreateExperimentKwargs(_Strict):
    artifact_location: str | None = None
    tags: dict[str, str] | None = None

    @field_validator("tags", mode="before")
    @classmethod
    def _stringify_tags(cls, tags: Any) -> Any:
        """MLflow stores tag values as strings: ``version: 2`` is accepted as ``"2"``."""
        if isinstance(tags, dict):
            return {key: value if isinstance(value, str) or value is None else str(value)
                    for key, value in tags.items()}
        return tags


class ExperimentConfig(_Strict):
    name: str | None = None
    create_experiment_kwargs: CreateExperimentKwargs = Field(default_factory=CreateExperimentKwargs)
    restore_if_deleted: bool = True


class RunConfig(_Strict):
    id: str | None = None
    name: str | None = None
    nested: bool = True


class DictParamsConfig(_Strict):
    flatten: bool = False
    recursive: bool = True
    sep: str = "."


class ParamsConfig(_Strict):
    dict_params: DictParamsConfig = Field(default_factory=DictParamsConfig)
    long_params_strategy: Literal["fail", "truncate", "tag"] = "fail"
    # Ours: parameter names containing one of these (case-insensitive) are logged redacted.
    secret_patterns: list[str] = Field(default_factory=lambda: list(DEFAULT_SECRET_PATTERNS))


class TrackingConfig(_Strict):
    disable_tracking: DisableTrackingConfig = Field(default_factory=DisableTrackingConfig)
    experiment: ExperimentConfig = Field(default_factory=ExperimentConfig)
    run: RunConfig = Field(default_factory=RunConfig)
    params: ParamsConfig = Field(default_factory=ParamsConfig)


class UiConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=5000, ge=1, le=65535)


class MlflowConfig(_Strict):
    """The whole of ``mlflow.yml``; ``project_path`` is filled in by the loader."""

    server: ServerConfig = Field(default_factory=ServerConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    ui: UiConfig = Field(default_factory=UiConfig)

    project_path: Path | None = Field(default=None, exclude=True)
    package_name: str | None = Field(default=None, exclude=True)

    @property
    def experiment_name(self) -> str:
        return self.tracking.experiment.name or self.package_name or "Default"

    def tracking_uri(self) -> str:
        """The resolved tracking URI (see ``kedro_mlflow_starter.config.uris``)."""
        from kedro_mlflow_starter.config.uris import resolve_tracking_uri

        return resolve_tracking_uri(self.server.mlflow_tracking_uri, self.project_path)

    def registry_uri(self) -> str | None:
        from kedro_mlflow_starter.config.uris import resolve_registry_uri

        return resolve_registry_uri(self.server.mlflow_registry_uri, self.project_path)
