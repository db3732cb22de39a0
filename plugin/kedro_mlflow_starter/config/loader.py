"""Read ``mlflow.yml`` (optional; ``conf/<env>`` soft-merged over ``conf/base``) through the project's
config loader; every problem is one ``MlflowConfigError`` naming the file, the key and what is allowed."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from kedro.config import MissingConfigException
from omegaconf import OmegaConf
from omegaconf.resolvers import oc
from pydantic import ValidationError

from kedro_mlflow_starter.config.mlflow_config import MlflowConfig
from kedro_mlflow_starter.errors import MlflowConfigError, UnsupportedTrackingUriError

if TYPE_CHECKING:
    from kedro.config import AbstractConfigLoader
    from pydantic_core import ErrorDetails

CONFIG_KEY = "mlflow"


def register_config_key(config_loader: AbstractConfigLoader, key: str, merge_strategy: str | None = None) -> None:
    """Teach the project's config loader where ``<key>*.yml`` lives (and how to merge it)."""
    patterns = getattr(config_loader, "config_patterns", None)
    if patterns is not None and key not in patterns:
        patterns[key] = [f"{key}*", f"{key}*/**", f"**/{key}*"]
    strategies = getattr(config_loader, "merge_strategy", None)
    if merge_strategy and strategies is not None:
        strategies.setdefault(key, merge_strategy)


def load_mlflow_config(config_loader: AbstractConfigLoader, project_path: Path, package_name: str | None) -> MlflowConfig:
    """Validated ``MlflowConfig`` of the project (all defaults when there is no file)."""
    register_config_key(config_loader, CONFIG_KEY, "soft")
    files = config_files(config_loader, project_path, CONFIG_KEY)
    try:
        with _environment_variables_allowed():
            raw = config_loader[CONFIG_KEY]
    except (KeyError, MissingConfigException):  # no mlflow.yml: all defaults
        raw = {}
    except Exception as error:  # YAML syntax, bad interpolation, duplicate keys
        raise MlflowConfigError(_describe_load_error(error, files)) from error
    raw = dict(raw or {})
    try:
        config = MlflowConfig.model_validate(raw)
    except ValidationError as error:
        raise MlflowConfigError(_describe_validation_error(error, files)) from error
    config.project_path = Path(project_path)
    config.package_name = package_name
    try:
        config.tracking_uri()
        config.registry_uri()
    except UnsupportedTrackingUriError as error:
        where = file_defining(files, ("server", "mlflow_tracking_uri")) or "MLFLOW_TRACKING_URI"
        raise MlflowConfigError(f"Invalid MLflow configuration in {where}: server.mlflow_tracking_uri: {error}") from error
    return config


@contextlib.contextmanager
def _environment_variables_allowed() -> Iterator[None]:
    """Kedro enables ``${oc.env:...}`` only for credentials; mlflow.yml needs it too."""
    if OmegaConf.has_resolver("oc.env"):
        yield
        return
    OmegaConf.register_new_resolver("oc.env", oc.env)
    try:
        yield
    finally:
        OmegaConf.clear_resolver("oc.env")


def config_files(config_loader: AbstractConfigLoader, project_path: Path, stem: str) -> list[Path]:
    """The ``<stem>*.yml`` files the config loader reads, base environment first (the last one wins)."""
    conf_source = Path(getattr(config_loader, "conf_source", project_path / "conf"))
    env = getattr(config_loader, "env", None) or getattr(config_loader, "default_run_env", "local")
    files: list[Path] = []
    for folder in dict.fromkeys([getattr(config_loader, "base_env", "base"), env or ""]):
        if folder and (conf_source / folder).is_dir():
            files += sorted(p for p in (conf_source / folder).rglob(f"{stem}*") if p.suffix in (".yml", ".yaml"))
    return files


def file_defining(files: list[Path], key_path: tuple[Any, ...]) -> str | None:
    """The last file (the one that wins the merge) that sets ``key_path``."""
    found = None
    for path in files:
        try:
            node: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            continue
        for part in key_path:
            if isinstance(node, dict) and part in node:
                node = node[part]
            else:
                break
        else:
            found = str(path)
    return found


def _describe_load_error(error: Exception, files: list[Path]) -> str:
    for path in files:
        try:
            yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as yaml_error:
            return f"Invalid YAML in {path}: {yaml_error}. Fix the syntax of that file (indentation, ':' after keys, quotes)."
    names = ", ".join(str(p) for p in files) or "mlflow.yml"
    return f"Could not read the MLflow configuration ({names}): {error}"


def _describe_validation_error(error: ValidationError, files: list[Path]) -> str:
    lines = []
    for issue in error.errors():
        loc = tuple(issue["loc"])
        key = ".".join(str(part) for part in loc)
        where = file_defining(files, loc) or ", ".join(str(p) for p in files) or "mlflow.yml"
        if issue["type"] == "extra_forbidden":
            parent = _model_at(loc[:-1])
            # fields the plugin fills in itself (exclude=True: project_path, package_name) are not the user's to write
            allowed = (", ".join(name for name, field in parent.model_fields.items() if not field.exclude) if parent
                       else "see the documented mlflow.yml")
            lines.append(f"{where}: unknown key '{key}'. Allowed keys here: {allowed}.")
        else:
            lines.append(f"{where}: {invalid_value(key, issue)}")
    return "Invalid MLflow configuration. " + " ".join(lines)


def invalid_value(key: str, issue: ErrorDetails) -> str:
    """One pydantic issue as ``key = value is invalid: why. Allowed: what.``"""
    expected = (issue.get("ctx") or {}).get("expected")
    return f"{key} = {issue.get('input')!r} is invalid: {issue['msg']}." + (f" Allowed: {expected}." if expected else "")


def _model_at(loc: tuple[Any, ...]) -> type | None:
    model: Any = MlflowConfig
    for part in loc:
        field = model.model_fields.get(part) if hasattr(model, "model_fields") else None
        if field is None:
            return None
        model = field.annotation
    return model if hasattr(model, "model_fields") else None
