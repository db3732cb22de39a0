"""1,000 flattened parameters go out in batches, all of them, with the right values."""

from __future__ import annotations

from tests.project_factory import project_env, script_result
from tests.tracking_helpers import only_run

NODES = '''
def use_all(parameters: dict) -> float:
    return float(len(parameters))
'''

REGISTRY = '''
from kedro.pipeline import Pipeline, node


def register_pipelines():
    from {package}.nodes import use_all

    pipeline = Pipeline([node(use_all, "parameters", "count", name="use_all")])
    return {{"__default__": pipeline}}
'''


def test_thousand_parameters_in_at_most_ten_store_calls(tmp_path, migrated_db):
    import shutil

    from tests.project_factory import make_project

    parameters = {f"group{g}": {f"p{i}": g * 1000 + i for i in range(100)} for g in range(10)}
    project = make_project(tmp_path, nodes=NODES, registry=REGISTRY, parameters=parameters, catalog={},
                           mlflow_yml={"tracking": {"params": {"dict_params": {"flatten": True}}}})
    shutil.copy(migrated_db, project.db)
    calls = script_result("count_store_calls", {"project_path": str(project.path)}, cwd=project.path,
                          env=project_env(), timeout=300)["calls"]
    assert 1 <= len(calls) <= 10, calls
    params = only_run(project).data.params
    assert len(params) == 1000
    assert all(params[f"group{g}.p{i}"] == str(g * 1000 + i) for g in range(10) for i in range(100))
