"""The JSON Schema of ``mlflow.yml`` for editors, generated from the pydantic model. Regenerate the shipped
file (in ``conf/``: Kedro reads every ``mlflow*`` file of an environment folder) after changing the model::

    python -m kedro_mlflow_starter.config.schema > "starter/{{ cookiecutter.repo_name }}/conf/mlflow.schema.json"
"""

from __future__ import annotations

import json
from typing import Any

from kedro_mlflow_starter.config.mlflow_config import MlflowConfig

SCHEMA_LINE = "# yaml-language-server: $schema=../mlflow.schema.json"  # from conf/<env>/mlflow.yml
# Any key may hold an OmegaConf interpolation (${oc.env:PORT}), whatever its type once resolved.
_INTERPOLATION = {
    "type": "string",
    "pattern": r"^\$\{.+\}$",
    "description": "An OmegaConf interpolation, resolved when Kedro reads the file.",
}


def mlflow_yml_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) that ``mlflow.yml`` must satisfy."""
    schema = MlflowConfig.model_json_schema(mode="validation")
    for name, field in MlflowConfig.model_fields.items():
        if field.exclude:  # filled in by the loader
            schema["properties"].pop(name, None)
    schema["title"] = "mlflow.yml (kedro-mlflow-starter)"
    schema["description"] = (
        "MLflow configuration of a Kedro project, read by kedro-mlflow-starter from conf/<env>/mlflow.yml. "
        "Every key is optional.")
    for definition in [schema, *schema.get("$defs", {}).values()]:
        for name, prop in definition.get("properties", {}).items():
            definition["properties"][name] = _allow_interpolation(prop)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def render_schema() -> str:
    """The schema as the starter ships it (stable key order, trailing newline)."""
    return json.dumps(mlflow_yml_schema(), indent=2, sort_keys=False) + "\n"


def _allow_interpolation(prop: dict[str, Any]) -> dict[str, Any]:
    """Accept ``${...}`` for a leaf that a plain string does not already satisfy."""
    if "$ref" in prop:  # a section: its own keys get the alternative
        return prop
    keep = {k: prop[k] for k in ("title", "description", "default") if k in prop}
    rest = {k: v for k, v in prop.items() if k not in keep}
    alternatives = rest.pop("anyOf", None) or [rest]
    if any(alt == {"type": "string"} for alt in alternatives):
        return prop
    return {**keep, "anyOf": [*alternatives, _INTERPOLATION]}


if __name__ == "__main__":  # python -m kedro_mlflow_starter.config.schema > conf/mlflow.schema.json
    print(render_schema(), end="")
