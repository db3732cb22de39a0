"""Every run says what it was made from: dataset inputs, metric dataset links, versions,
resolved configuration, pipeline structure and node timings (issue 14).

The end-to-end tests run `kedro run` in a small generated project against a real SQLite
store and read the run back with a fresh MlflowClient, as the MLflow UI would.
"""

from __future__ import annotations

import json
import os
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd
import pytest
import yaml

from kedro_mlflow_starter.config.mlflow_config import LineageConfig
from kedro_mlflow_starter.config.redaction import redact_nested
from kedro_mlflow_starter.tracking.lineage import (
    EVALUATION,
    TRAINING,
    describe_dataset,
    file_metadata_digest,
    pipeline_roles,
    safe_source,
)
from kedro_mlflow_starter.tracking.node_timings import NodeTimer, metric_key
from kedro_mlflow_starter.tracking.pipeline_graph import pipeline_svg
from tests.project_factory import KedroProject, make_project
from tests.tracking_helpers import output

VERSION = "2024-01-01T00.00.00.000Z"

NODES = '''
import pandas as pd


def double(df: pd.DataFrame, factor: float) -> pd.DataFrame:
    return df * factor


def fit(df: pd.DataFrame):
    from sklearn.linear_model import LinearRegression

    return LinearRegression().fit(df[["a"]], df["b"])


def score(model, df: pd.DataFrame) -> float:
    return float(model.score(df[["a"]], df["b"]))
'''

REGISTRY = '''
from kedro.pipeline import Pipeline, node


def register_pipelines():
    from {package}.nodes import double, fit, score

    pipeline = Pipeline([
        node(double, ["raw", "params:factor"], "doubled", name="double"),
        node(fit, "doubled", "model", name="fit"),
        node(score, ["model", "doubled"], "r2", name="score"),
    ])
    return {{"__default__": pipeline}}
'''

CATALOG = {
    "raw": {"type": "pandas.CSVDataset", "filepath": "data/01_raw/versioned.csv", "versioned": True},
    "doubled": {"type": "pandas.CSVDataset", "filepath": "data/02_intermediate/doubled.csv", "versioned": True,
                "credentials": "db_creds"},
    "model": {"type": "kedro_mlflow_starter.io.MlflowModelTrackingDataset", "flavor": "mlflow.sklearn"},
    "r2": {"type": "kedro_mlflow_starter.io.MlflowMetricDataset"},
}
PARAMETERS = {"factor": 2.0, "api_token": "s3cr3t-token-value", "nested": {"db_password": "hunter2", "depth": 3}}


def _client(project: KedroProject):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=project.tracking_uri)


def _runs(project: KedroProject):
    client = _client(project)
    experiment = client.get_experiment_by_name(project.package)
    return client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])


@pytest.fixture(scope="module")
def lineage_project(tmp_path_factory: pytest.TempPathFactory, migrated_db: Path) -> KedroProject:
    """A project whose run reads a versioned CSV, writes a versioned CSV, logs a model and a
    metric computed on the written data; run once with `--params factor=3` (lineage on), once
    with every lineage switch off (`--env off`)."""
    project = make_project(tmp_path_factory.mktemp("lineage"), nodes=NODES, registry=REGISTRY, catalog=CATALOG,
                           parameters=PARAMETERS)
    shutil.copy(migrated_db, project.db)
    project.write(f"data/01_raw/versioned.csv/{VERSION}/versioned.csv", "a,b\n1,12\n2,19\n3,31\n4,42\n")
    project.write_yaml("conf/base/credentials.yml", {"db_creds": {"password": "never-in-mlflow"}})
    project.write_yaml("conf/off/mlflow.yml", {"tracking": {"lineage": {
        "datasets": False, "config": False, "node_timings": False, "pipeline_graph": False}}})
    for args in (("run", "--params", "factor=3"), ("run", "--env", "off")):
        result = project.run_in_process(*args)
        assert result.returncode == 0, output(result)
        assert "lineage was not" not in output(result), output(result)
    return project


@pytest.fixture(scope="module")
def tracked(lineage_project: KedroProject):
    return _runs(lineage_project)[0]


def test_the_datasets_read_are_run_inputs_with_context_source_digest_schema_and_rows(lineage_project, tracked):
    import mlflow.data

    inputs = {i.dataset.name: i for i in tracked.inputs.dataset_inputs}
    assert set(inputs) == {"raw", "doubled"}  # the model a metric node read is not evaluation data
    contexts = {name: {t.key: t.value for t in i.tags}["mlflow.data.context"] for name, i in inputs.items()}
    assert contexts == {"raw": TRAINING, "doubled": EVALUATION}

    raw = inputs["raw"].dataset
    loaded_file = lineage_project.path / f"data/01_raw/versioned.csv/{VERSION}/versioned.csv"
    assert json.loads(raw.source) == {"uri": str(loaded_file)}  # the version the run read
    assert raw.source_type == "local"
    assert {t.key: t.value for t in inputs["raw"].tags}["kedro.load_version"] == VERSION
    # The digest is MLflow's own digest of the DataFrame the node loaded, not of some re-read.
    assert raw.digest == mlflow.data.from_pandas(pd.read_csv(loaded_file)).digest
    assert [c["name"] for c in json.loads(raw.schema)["mlflow_colspec"]] == ["a", "b"]
    assert json.loads(raw.profile)["num_rows"] == 4
    doubled = inputs["doubled"].dataset
    assert "never-in-mlflow" not in doubled.source + doubled.schema


def test_the_metric_is_linked_to_the_model_and_the_data_it_was_computed_on(lineage_project, tracked):
    client = _client(lineage_project)
    [model] = client.search_logged_models([tracked.info.experiment_id],
                                          filter_string=f"source_run_id = '{tracked.info.run_id}'")
    linked = [(m.key, m.dataset_name, m.dataset_digest) for m in model.metrics if m.dataset_name]
    doubled = next(i.dataset for i in tracked.inputs.dataset_inputs if i.dataset.name == "doubled")
    assert linked == [("r2", "doubled", doubled.digest)]
    assert [m.value for m in model.metrics if m.key == "r2"] == [tracked.data.metrics["r2"]]
    # The run's own history still holds the metric once.
    assert len(client.get_metric_history(tracked.info.run_id, "r2")) == 1


def test_versioned_datasets_record_load_and_save_versions_as_tags(lineage_project, tracked):
    tags = tracked.data.tags
    assert tags["kedro.load_version.raw"] == VERSION
    saved = tags["kedro.save_version.doubled"]
    assert (lineage_project.path / "data/02_intermediate/doubled.csv" / saved / "doubled.csv").is_file()


def test_resolved_config_and_pipeline_structure_are_artifacts_with_secrets_removed(lineage_project, tracked, tmp_path):
    client = _client(lineage_project)
    folder = Path(client.download_artifacts(tracked.info.run_id, "kedro", str(tmp_path)))
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert files == ["config/catalog.yml", "config/parameters.yml", "config/run.yml", "pipeline.json", "pipeline.svg"]

    parameters = yaml.safe_load((folder / "config/parameters.yml").read_text())
    assert parameters == {"factor": 3, "api_token": "***", "nested": {"db_password": "***", "depth": 3}}
    catalog = yaml.safe_load((folder / "config/catalog.yml").read_text())
    assert set(catalog) == {"raw", "doubled", "model", "r2"}
    assert catalog["raw"]["filepath"].endswith("data/01_raw/versioned.csv")
    run = yaml.safe_load((folder / "config/run.yml").read_text())
    assert run["runtime_params"] == {"factor": 3} and run["runner"] == "SequentialRunner"
    everything = "".join(p.read_text() for p in folder.rglob("*") if p.is_file())
    for secret in ("never-in-mlflow", "hunter2", "s3cr3t-token-value", " object at 0x"):
        assert secret not in everything

    pipeline = json.loads((folder / "pipeline.json").read_text())
    assert sorted(n["name"] for n in pipeline["pipeline"]) == ["double", "fit", "score"]
    assert {n["name"]: n["inputs"] for n in pipeline["pipeline"]}["score"] == ["model", "doubled"]
    svg = ET.parse(folder / "pipeline.svg").getroot()
    texts = {t.text for t in svg.iter("{http://www.w3.org/2000/svg}text")}
    assert {"raw", "doubled", "model", "r2", "double  (+1 param)", "fit", "score"} <= texts


def test_node_and_pipeline_wall_times_are_metrics(tracked):
    metrics = tracked.data.metrics
    nodes = {k: v for k, v in metrics.items() if k.startswith("time.node.")}
    assert set(nodes) == {"time.node.double", "time.node.fit", "time.node.score"}
    assert all(v > 0 for v in nodes.values())
    # Sequential nodes: the pipeline took at least as long as its nodes together.
    assert metrics["time.pipeline"] >= sum(nodes.values())


def test_each_switch_turns_its_part_off(lineage_project):
    off = _runs(lineage_project)[1]
    assert off.info.status == "FINISHED" and off.data.metrics["r2"] > 0
    assert off.inputs.dataset_inputs == []
    assert not [k for k in off.data.metrics if k.startswith("time.")]
    assert not [k for k in off.data.tags if k.startswith(("kedro.load_version", "kedro.save_version"))]
    assert "kedro" not in [a.path for a in _client(lineage_project).list_artifacts(off.info.run_id)]


# ----- the pieces, without a kedro run -------------------------------------------------------


def test_file_metadata_digest_changes_with_the_file_and_never_reads_it(tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(b"x" * 10)
    first = file_metadata_digest(path)
    assert file_metadata_digest(path) == first
    path.write_bytes(b"y" * 11)
    assert file_metadata_digest(path) != first
    # Unreadable content, same stat: a digest all the same (only metadata is used).
    os.chmod(path, 0)
    try:
        assert len(file_metadata_digest(path)) == 8
    finally:
        os.chmod(path, 0o600)


def test_a_non_tabular_input_gets_a_file_metadata_digest_and_no_schema(tmp_path):
    path = tmp_path / "model.pkl"
    path.write_bytes(b"pickled")
    record = describe_dataset("model", object(), {"filepath": "model.pkl"}, "input", project_path=tmp_path)
    assert record.digest == file_metadata_digest(path)
    assert record.schema is None and record.profile is None
    assert json.loads(record.source) == {"uri": "model.pkl"}


@pytest.mark.parametrize(
    ("location", "hidden", "kept"),
    [
        ("s3://AKIAKEY:topsecret@bucket/data.csv", "topsecret", "s3://***@bucket/data.csv"),
        ("https://host/data.csv?sig=abc123&token=tok456&versionId=7", "tok456", "versionId=7"),
        ("data/01_raw/iris.csv", None, "data/01_raw/iris.csv"),
    ],
)
def test_sources_never_carry_credentials(location, hidden, kept):
    text = safe_source(location, ["token", "sig"])
    if hidden:
        assert hidden not in text and "abc123" not in text
    assert kept in text


def test_redaction_of_config_removes_secret_keys_inline_credentials_and_uri_passwords():
    config = {
        "a": {"type": "pandas.SQLTableDataset", "credentials": {"con": "postgresql://u:pw@db/x"},
              "load_args": {"storage_options": {"client_secret": "zzz", "account": "acc"}}},
        "b": {"credentials": "named_entry", "filepath": "s3://k:s@bucket/b.csv"},
    }
    clean = redact_nested(config, ["secret", "password"], credentials_by_name=True)
    assert clean["a"]["credentials"] == "***"
    assert clean["a"]["load_args"]["storage_options"] == {"client_secret": "***", "account": "acc"}
    assert clean["b"] == {"credentials": "named_entry", "filepath": "s3://***@bucket/b.csv"}


def test_roles_contexts_follow_how_the_pipeline_uses_each_dataset():
    from kedro.pipeline import Pipeline, node

    def f(*args):
        return 1

    pipeline = Pipeline([
        node(f, ["train", "params:x"], "model", name="fit"),
        node(f, ["model", "holdout"], "score", name="evaluate"),
        node(f, "lookup", "table", name="other"),
    ])
    types = {"model": "x.MlflowModelTrackingDataset", "score": "kedro_mlflow_starter.io.metrics.MlflowMetricDataset"}
    roles = pipeline_roles(pipeline, types)
    assert roles.free_inputs == ["holdout", "lookup", "train"]
    assert roles.evaluation_inputs == {"score": ["model", "holdout"]}
    assert [roles.context_of(n) for n in ("train", "holdout", "lookup", "model", "params:x")] == \
        ["training", "evaluation", "training", "evaluation", None]
    assert pipeline_roles(pipeline, {}).context_of("train") == "input"  # nothing trained: plain input


def test_node_timer_counts_from_first_load_to_last_save_and_keys_are_valid():
    timer = NodeTimer()
    timer.start("n")
    first = timer._started["n"]
    timer.start("n")  # before_node_run after the loads: the first start counts
    timer.stop("n")
    timer.stop("n")  # after the last save
    assert timer._started["n"] == first and timer.seconds["n"] >= 0
    assert "never" not in timer.seconds
    assert metric_key("ns.my node[1]:x") == "time.node.ns.my node_1__x"


def test_pipeline_svg_is_a_well_formed_picture_of_every_node_and_dataset():
    from kedro.pipeline import Pipeline, node

    def f(*args):
        return 1

    pipeline = Pipeline([node(f, ["a&b", "params:p"], "c<d>", name="n1"), node(f, "c<d>", "e", name="n2")])
    root = ET.fromstring(pipeline_svg(pipeline, {}, title="demo"))
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert texts[0] == "demo" and {"a&b", "c<d>", "e", "n1  (+1 param)", "n2"} <= set(texts)
    assert len(list(root.iter("{http://www.w3.org/2000/svg}path"))) >= 4  # 4 edges (+ the arrow head)


def test_lineage_switches_default_on():
    assert LineageConfig().model_dump() == {"datasets": True, "config": True, "node_timings": True,
                                            "pipeline_graph": True}


def test_finish_makes_a_bounded_number_of_store_calls_whatever_the_pipeline_size(tmp_path, migrated_db):
    """50 nodes, 50 free inputs: one log_inputs, one log_batch, one log_artifacts."""
    from kedro.io import DataCatalog
    from kedro.pipeline import Pipeline, node
    from mlflow.tracking import MlflowClient

    def copy(df):
        return df

    db = tmp_path / "mlflow.db"
    shutil.copy(migrated_db, db)
    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    run_id = client.create_run("0").info.run_id
    pipeline = Pipeline([node(copy, f"in_{i}", f"out_{i}", name=f"n{i}") for i in range(50)])
    catalog = DataCatalog.from_config({f"in_{i}": {"type": "pandas.CSVDataset", "filepath": f"in_{i}.csv"}
                                       for i in range(50)})
    catalog["parameters"] = {"factor": 1}
    from kedro_mlflow_starter.tracking.lineage_recorder import LineageRecorder

    recorder = LineageRecorder(LineageConfig(), pipeline, catalog, {"pipeline_names": ["__default__"]},
                               project_path=tmp_path)
    frame = pd.DataFrame({"a": range(5)})
    for i in range(50):
        recorder.node_started(f"n{i}")
        recorder.dataset_loaded(f"in_{i}", frame)
        recorder.node_finished(f"n{i}")
    recorder.pipeline_finished()

    calls: list[str] = []

    class Counting:
        def __getattr__(self, name):
            calls.append(name)
            return getattr(client, name)

    recorder.finish(Counting(), run_id, "0")
    assert sorted(calls) == ["log_artifacts", "log_batch", "log_inputs"]
    run = client.get_run(run_id)
    assert len(run.inputs.dataset_inputs) == 50
    assert len([k for k in run.data.metrics if k.startswith("time.node.")]) == 50
    client.set_terminated(run_id)


def test_a_dataset_input_another_task_wrote_at_the_same_moment_is_logged_once_not_lost(tmp_path, migrated_db):
    """Orchestrated tasks log the same input into one run at once: MLflow's SQL store checks for
    the row, then inserts it, so the later task hits the unique constraint. The race is made
    deterministic here: a rival client writes the same dataset input between the store's check
    and its commit (the rival runs in its own thread, on its own connection)."""
    import threading

    from mlflow.tracking import MlflowClient
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    from kedro_mlflow_starter.tracking.lineage import log_dataset_inputs

    db = tmp_path / "mlflow.db"
    shutil.copy(migrated_db, db)
    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    run_id = client.create_run("0").info.run_id
    record = describe_dataset("iris", pd.DataFrame({"a": [1, 2, 3]}), {"filepath": "data/iris.csv"}, TRAINING)
    rivals: list[threading.Thread] = []

    def rival_writes_first(session, *args) -> None:  # noqa: ANN001, ANN002
        if not rivals and session.new:  # our insert is about to be flushed: the rival wins the race
            rival = threading.Thread(target=log_dataset_inputs, args=(client, run_id, [record]))
            rivals.append(rival)
            rival.start()
            rival.join()

    event.listen(Session, "before_flush", rival_writes_first)
    try:
        log_dataset_inputs(client, run_id, [record])
    finally:
        event.remove(Session, "before_flush", rival_writes_first)
    assert rivals, "the rival writer never ran: the race was not staged"
    inputs = client.get_run(run_id).inputs.dataset_inputs
    assert [(i.dataset.name, i.dataset.digest) for i in inputs] == [("iris", record.digest)]


def test_a_failed_dataset_input_still_lets_the_node_timings_and_config_be_logged(tmp_path, migrated_db):
    from kedro.io import DataCatalog
    from kedro.pipeline import Pipeline, node
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from kedro_mlflow_starter.tracking.lineage_recorder import LineageRecorder

    def copy(df):  # noqa: ANN001, ANN202
        return df

    db = tmp_path / "mlflow.db"
    shutil.copy(migrated_db, db)
    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    run_id = client.create_run("0").info.run_id
    catalog = DataCatalog.from_config({"raw": {"type": "pandas.CSVDataset", "filepath": "raw.csv"}})
    catalog["parameters"] = {"factor": 1}
    recorder = LineageRecorder(LineageConfig(), Pipeline([node(copy, "raw", "out", name="copy")]), catalog,
                               {"pipeline_names": ["__default__"]}, project_path=tmp_path)
    recorder.node_started("copy")
    recorder.dataset_loaded("raw", pd.DataFrame({"a": [1]}))
    recorder.node_finished("copy")
    recorder.pipeline_finished()

    class InputsRefused:  # the store refuses the dataset inputs, and only them
        def __getattr__(self, name):  # noqa: ANN001, ANN204
            if name == "log_inputs":
                def refuse(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
                    raise MlflowException("dataset source too long")
                return refuse
            return getattr(client, name)

    with pytest.raises(MlflowException, match="dataset source too long"):
        recorder.finish(InputsRefused(), run_id, "0")
    run = client.get_run(run_id)
    assert {"time.node.copy", "time.pipeline"} <= set(run.data.metrics)
    assert "kedro" in {a.path for a in client.list_artifacts(run_id)}
