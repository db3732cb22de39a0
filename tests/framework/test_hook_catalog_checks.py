"""What the hook checks in the catalog before it opens a run."""

from __future__ import annotations

import yaml

from tests.pipeline_ml_fixtures import CATALOG, make_iris_project
from tests.tracking_helpers import only_run, output, runs_of

NODES = '''
def score(df, factor):
    return float(df.to_numpy().sum()) * factor
'''

REGISTRY = '''
from kedro.pipeline import Pipeline, node


def register_pipelines():
    from {package}.nodes import score

    return {{"__default__": Pipeline([node(score, ["raw", "params:factor"], "accuracy_metric", name="score")])}}
'''


def test_dataset_factory_entries_of_ours_get_the_entry_name_as_key(project):
    project.write("src/demo_project/nodes.py", NODES)
    project.write("src/demo_project/pipeline_registry.py", REGISTRY.format(package="demo_project"))
    catalog = yaml.safe_load((project.conf / "base/catalog.yml").read_text())
    catalog["{name}_metric"] = {"type": "kedro_mlflow_starter.io.MlflowMetricDataset"}
    project.write_yaml("conf/base/catalog.yml", catalog)
    result = project.run_in_process("run")
    assert result.returncode == 0, output(result)
    metrics = {k: v for k, v in only_run(project).data.metrics.items() if not k.startswith("time.")}  # timings: issue 14
    assert metrics == {"accuracy_metric": (0 + 1 + 2 + 0 + 10 + 20) * 2.0}


def test_pipeline_model_artifact_in_memory_fails_before_any_node_runs(tmp_path, migrated_db):
    project = make_iris_project(tmp_path, migrated_db)
    catalog = {name: entry for name, entry in CATALOG.items() if name != "scaler"}
    project.write_yaml("conf/base/catalog.yml", catalog)
    result = project.run_in_process("run")
    assert result.returncode != 0
    message = output(result)
    assert "'scaler'" in message and "MemoryDataset" in message and "conf/base/catalog.yml" in message
    assert not (project.path / "data/02_intermediate/iris.parquet").exists(), "a node ran"
    assert runs_of(project, experiment="iris_ml") == []
