"""The editor schema of mlflow.yml: generated from the pydantic model, shipped, wired, strict."""

from __future__ import annotations

import json
import runpy
import typing
import warnings
from pathlib import Path

import jsonschema
import pytest
import yaml
from pydantic import BaseModel

from kedro_mlflow_starter.config.mlflow_config import MlflowConfig
from kedro_mlflow_starter.config.schema import SCHEMA_LINE, mlflow_yml_schema, render_schema
from kedro_mlflow_starter.templates import mlflow_schema_template, render_mlflow_yml
from tests.starter_fixtures import TEMPLATE

SHIPPED_SCHEMA = TEMPLATE / "conf" / "mlflow.schema.json"
REGENERATE = 'python -m kedro_mlflow_starter.config.schema > "starter/{{ cookiecutter.repo_name }}/conf/mlflow.schema.json"'


def _validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SHIPPED_SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _errors(document) -> list[str]:
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in _validator().iter_errors(document)]


def _model_keys(model: type[BaseModel], prefix: str = "") -> dict[str, typing.Any]:
    """Every key path of the model (internal fields excluded) -> the field's annotation."""
    keys: dict[str, typing.Any] = {}
    for name, field in model.model_fields.items():
        if field.exclude:
            continue
        path = f"{prefix}{name}"
        keys[path] = field.annotation
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            keys.update(_model_keys(field.annotation, f"{path}."))
    return keys


def _schema_keys(schema: dict, node: dict | None = None, prefix: str = "") -> dict[str, dict]:
    node = schema if node is None else node
    keys: dict[str, dict] = {}
    for name, prop in node.get("properties", {}).items():
        keys[f"{prefix}{name}"] = prop
        if "$ref" in prop:
            target = schema["$defs"][prop["$ref"].rsplit("/", 1)[-1]]
            keys.update(_schema_keys(schema, target, f"{prefix}{name}."))
    return keys


def _enums(prop: dict) -> set[str]:
    found = set(prop.get("enum", []))
    for alternative in prop.get("anyOf", []):
        found |= _enums(alternative)
    return found


def test_shipped_schema_is_the_fresh_generation_from_the_model():
    assert SHIPPED_SCHEMA.read_text() == render_schema(), f"The shipped schema is stale: regenerate it with\n{REGENERATE}"
    assert mlflow_schema_template() == SHIPPED_SCHEMA


def test_the_regeneration_command_prints_the_schema(capsys):
    with warnings.catch_warnings():  # runpy: "found in sys.modules ... prior to execution" (it is imported above)
        warnings.simplefilter("ignore", RuntimeWarning)
        runpy.run_module("kedro_mlflow_starter.config.schema", run_name="__main__")  # python -m ...
    printed = capsys.readouterr().out
    assert printed == render_schema()


def test_every_key_and_every_enum_of_the_model_is_in_the_schema_with_help():
    model_keys = _model_keys(MlflowConfig)
    schema_keys = _schema_keys(mlflow_yml_schema())
    assert set(schema_keys) == set(model_keys)
    assert {"tracking.lineage.datasets", "tracking.lineage.config", "tracking.lineage.node_timings",
            "tracking.lineage.pipeline_graph"} <= set(schema_keys)
    for key, annotation in model_keys.items():
        literals = {arg for arg in typing.get_args(annotation)} if typing.get_origin(annotation) is typing.Literal else set()
        assert _enums(schema_keys[key]) == literals, key
        leaf = schema_keys[key]
        described = leaf.get("description") or mlflow_yml_schema()["$defs"].get(
            leaf.get("$ref", "").rsplit("/", 1)[-1], {}).get("description")
        assert described, f"{key} has no description to show on hover"


def test_the_shipped_mlflow_yml_validates_and_points_editors_at_the_schema(tmp_path: Path):
    rendered = render_mlflow_yml("my_package", "sqlite:///mlflow.db")
    assert rendered.splitlines()[0] == SCHEMA_LINE
    document = yaml.safe_load(rendered)
    assert _errors(document) == []
    # The relative reference resolves from conf/base/mlflow.yml (and conf/local/) to the shipped file.
    assert (TEMPLATE / "conf" / "base" / SCHEMA_LINE.split("$schema=")[1]).resolve() == SHIPPED_SCHEMA.resolve()
    MlflowConfig.model_validate(document)  # and the model agrees


def test_interpolations_are_accepted_for_any_type():
    document = {"ui": {"port": "${oc.env:MLFLOW_UI_PORT}"}, "tracking": {"lineage": {"datasets": "${globals:lineage}"}},
                "server": {"on_unreachable": "${oc.env:ON_UNREACHABLE}"}}
    assert _errors(document) == []


@pytest.mark.parametrize(
    ("document", "named"),
    [
        ({"tracking": {"experiment": {"nmae": "x"}}}, "'nmae' was unexpected"),
        ({"trackng": {}}, "'trackng' was unexpected"),
        ({"tracking": {"lineage": {"dataset": False}}}, "'dataset' was unexpected"),
        ({"ui": {"port": "five thousand"}}, "ui.port"),
        ({"ui": {"port": 70000}}, "ui.port"),
        ({"tracking": {"params": {"long_params_strategy": "drop"}}}, "tracking.params.long_params_strategy"),
        ({"tracking": {"lineage": {"node_timings": "yes please"}}}, "tracking.lineage.node_timings"),
        ({"tracking": {"disable_tracking": {"pipelines": "training"}}}, "tracking.disable_tracking.pipelines"),
    ],
)
def test_typos_and_wrong_types_are_rejected_by_the_schema_as_by_the_model(document, named):
    errors = _errors(document)
    assert errors and any(named in error for error in errors), errors
    with pytest.raises(Exception):
        MlflowConfig.model_validate(document)


def test_kedro_mlflow_init_writes_the_schema_its_file_points_at(project):
    result = project.run_in_process("mlflow", "init", "--env", "local")
    assert result.returncode == 0, result.stdout + result.stderr
    written = project.conf / "local" / "mlflow.yml"
    target = written.parent / written.read_text().splitlines()[0].split("$schema=")[1]
    assert target.read_text() == SHIPPED_SCHEMA.read_text()
    # The schema is not read as part of the MLflow config (Kedro loads every mlflow* file of an env).
    assert not list((project.conf / "local").glob("mlflow*.json")) and not list((project.conf / "base").glob("*.json"))


def test_kedro_new_ships_the_schema_unchanged_by_the_template_engine(cookies):
    from tests.test_starter_template import KEDRO_CONTEXT
    from tests.starter_fixtures import STARTER

    result = cookies.bake(template=str(STARTER), extra_context=KEDRO_CONTEXT)
    assert result.exit_code == 0, result.exception
    project = Path(result.project_path)
    assert (project / "conf" / "mlflow.schema.json").read_text() == SHIPPED_SCHEMA.read_text()
    assert _errors(yaml.safe_load((project / "conf" / "base" / "mlflow.yml").read_text())) == []
