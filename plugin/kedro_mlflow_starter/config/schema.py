"""The JSON Schema of ``mlflow.yml`` for editors, generated from the pydantic model.

The starter ships the result as ``conf/mlflow.schema.json`` and the first line of the
generated ``mlflow.yml`` points YAML editors at it (``# yaml-language-server: $schema=...``,
read by VS Code's YAML extension and JetBrains IDEs), so a typo key or a wrong type is
underlined before any ``kedro run``. Regenerate the shipped file after changing the model::

    python -m kedro_mlflow_starter.config.schema > "starter/{{ cookiecutter.repo_name }}/conf/mlflow.schema.json"

The file sits in ``conf/`` and not in ``conf/base/``: Kedro's config loader reads every
``mlflow*`` file of an environment folder, JSON included, as part of the MLflow config.
"""

from __future__ import annotations

import json
from typing import Any

from kedro_mlflow_starter.config.mlflow_config import MlflowConfig

SCHEMA_FILE_NAME = "mlflow.schema.json"
# Relative to the mlflow.yml of any environment folder (conf/base, conf/local, ...).
SCHEMA_REFERENCE = f"../{SCHEMA_FILE_NAME}"
SCHEMA_LINE = f"# yaml-language-server: $schema={SCHEMA_REFERENCE}"

# Filled in by the loader, never read from the file.
_INTERNAL_FIELDS = ("project_path", "package_name")
# An OmegaConf interpolation such as ${oc.env:PORT} or ${globals:uri}: any key may hold one,
# whatever its type once resolved, so the schema accepts it everywhere.
_INTERPOLATION = {
    "type": "string",
    "pattern": r"^\$\{.+\}$",
    "description": "An OmegaConf interpolation, resolved when Kedro reads the file.",
}


def mlflow_yml_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) that ``mlflow.yml`` must satisfy."""
    schema = MlflowConfig.model_json_schema(mode="validation")
    for name in _INTERNAL_FIELDS:
        schema["properties"].pop(name, None)
    schema["title"] = "mlflow.yml (kedro-mlflow-starter)"
    schema["description"] = (
        "MLflow configuration of a Kedro project, read by kedro-mlflow-starter from conf/<env>/mlflow.yml. "
        "Every key is optional."
    )
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
