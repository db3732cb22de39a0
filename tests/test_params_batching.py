"""1,000 flattened parameters go out in batches, all of them, with the right values."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.project_factory import project_env
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
    script = f"""
import json
from pathlib import Path
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
calls = []
for name in ("log_batch", "log_param", "log_params"):
    original = getattr(SqlAlchemyStore, name, None)
    if original is None:
        continue
    def counting(self, *args, _original=original, _name=name, **kwargs):
        carried = kwargs.get("params", args[2] if _name == "log_batch" and len(args) > 2 else args[1:])
        if carried:  # the call carries parameters (node timings go out in a params-free log_batch)
            calls.append(_name)
        return _original(self, *args, **kwargs)
    setattr(SqlAlchemyStore, name, counting)
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
root = Path({str(project.path)!r})
bootstrap_project(root)
with KedroSession.create(project_path=root) as session:
    session.run()
print(json.dumps(calls))
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=project.path, env=project_env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    calls = json.loads(done.stdout.strip().splitlines()[-1])
    assert 1 <= len(calls) <= 10, calls
    params = only_run(project).data.params
    assert len(params) == 1000
    assert all(params[f"group{g}.p{i}"] == str(g * 1000 + i) for g in range(10) for i in range(100))
