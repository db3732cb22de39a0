"""The parameters a pipeline reads, as MLflow params: flattened, redacted and fit to MLflow's limits
as ``mlflow.yml``'s ``tracking.params`` says."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kedro_mlflow_starter.config.mlflow_config import ParamsConfig
from kedro_mlflow_starter.config.redaction import REDACTED, is_secret, redact_nested, redact_uri
from kedro_mlflow_starter.errors import LongParameterError
from kedro_mlflow_starter.kedro_names import is_parameter, parameter_key

if TYPE_CHECKING:  # pragma: no cover
    from kedro.io import DataCatalog

MAX_PARAM_VALUE_LENGTH = 6000
MAX_TAG_VALUE_LENGTH = 8000
MAX_KEY_LENGTH = 250
INVALID_KEY_CHARS = re.compile(r"[^/\w.\- :]")


@dataclass
class PreparedParams:
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    renamed: dict[str, str] = field(default_factory=dict)
    truncated: list[str] = field(default_factory=list)

    def notices(self) -> list[str]:
        """What the user must be told: keys MLflow made us rename, values we cut short."""
        lines = [f"MLflow parameter '{original}' is logged as '{key}' (MLflow rejects some characters)."
                 for original, key in self.renamed.items()]
        for key in self.truncated:
            where = "tag" if key in self.tags else "parameter"
            limit = MAX_TAG_VALUE_LENGTH if key in self.tags else MAX_PARAM_VALUE_LENGTH
            lines.append(f"MLflow {where} '{key}' is truncated to its first {limit} characters "
                         "(tracking.params.long_params_strategy in mlflow.yml).")
        return lines


def pipeline_parameters(input_names: Iterable[str], load: Callable[[str], Any]) -> dict[str, Any]:
    """The parameters read by a pipeline whose free inputs are ``input_names`` (``load``: by catalog
    name): ``params:a.b`` becomes ``{"a.b": value}``; ``parameters`` stands for all."""
    values: dict[str, Any] = {}
    for name in sorted(input_names):  # "parameters" sorts before "params:..."
        if name == "parameters":
            values.update(load(name) or {})
        elif is_parameter(name):
            values[parameter_key(name)] = load(name)
    return values


def read_quietly(catalog: DataCatalog) -> Callable[[str], Any]:
    """A ``load`` for ``pipeline_parameters`` that reads the catalog's parameter datasets
    themselves: no "Loading data from params:..." line from Kedro before the run opens."""
    return lambda name: catalog.get(name).load()


def flatten(values: Mapping[str, Any], sep: str, recursive: bool) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping) and value:
            inner = flatten(value, sep, recursive) if recursive else dict(value)
            for sub_key, sub_value in inner.items():
                flat[f"{key}{sep}{sub_key}"] = sub_value
        else:
            flat[key] = value
    return flat


def to_text(value: Any) -> str:
    """A readable string for a parameter value (JSON for containers, never an object repr)."""
    if isinstance(value, str):
        return value
    if not isinstance(value, (Mapping, list, tuple, set)):
        return str(value)  # numbers, booleans, None, paths, dates: their own text
    try:
        return json.dumps(value, default=str, sort_keys=True)
    except (TypeError, ValueError):
        return str(value)


def prepare_params(values: Mapping[str, Any], config: ParamsConfig) -> PreparedParams:
    """Apply flattening, redaction, key sanitising and the long-value strategy."""
    dict_params = config.dict_params
    flat = flatten(values, dict_params.sep, dict_params.recursive) if dict_params.flatten else dict(values)
    prepared = PreparedParams()
    for raw_key, value in flat.items():
        key = INVALID_KEY_CHARS.sub("_", str(raw_key))[:MAX_KEY_LENGTH]
        if key != raw_key:
            prepared.renamed[str(raw_key)] = key
        if is_secret(key, config.secret_patterns):
            text = REDACTED
        else:
            text = redact_uri(to_text(redact_nested(value, config.secret_patterns)))
        if len(text) <= MAX_PARAM_VALUE_LENGTH:
            prepared.params[key] = text
        elif config.long_params_strategy == "fail":
            raise LongParameterError(
                f"Parameter '{raw_key}' is {len(text)} characters long; MLflow accepts at most "
                f"{MAX_PARAM_VALUE_LENGTH}. Set tracking.params.long_params_strategy in mlflow.yml to "
                "'truncate' (log the first 6000 characters) or 'tag' (log it as a tag), or shorten the value."
            )
        elif config.long_params_strategy == "truncate":
            prepared.params[key] = text[:MAX_PARAM_VALUE_LENGTH]
            prepared.truncated.append(key)
        else:
            prepared.tags[key] = text[:MAX_TAG_VALUE_LENGTH]
            if len(text) > MAX_TAG_VALUE_LENGTH:
                prepared.truncated.append(key)
    return prepared
