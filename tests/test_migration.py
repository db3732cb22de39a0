"""Issue 12: a kedro-mlflow 2.x project migrates by renaming ``type:`` prefixes and one import.

One project, written the kedro-mlflow way (its ``mlflow.yml`` as ``kedro mlflow init`` writes
it, catalog entries with its arguments, ``pipeline_ml_factory`` in the registry, nodes calling
``mlflow.active_run()`` and ``mlflow.log_metric``, a notebook-style script, an untracked
serving pipeline loading a registered model), is migrated by ``migrate()`` below (renames
only) and run with every runner. Issue 11 §1: the same project runs with the hook disabled.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.project_factory import KedroProject, make_project, project_env, run_kedro_in_process, script_result
from tests.tracking_helpers import client_for, logged_models_of_run, runs_of

# kedro-mlflow 2.x's mlflow.yml, as its `kedro mlflow init` writes it (comments shortened),
# with the values a user fills in: a store, an experiment with tags, a header provider.
KEDRO_MLFLOW_YML = """
server:
  mlflow_tracking_uri: sqlite:///migrated.db # if null, will use mlflow.get_tracking_uri() as a default
  mlflow_registry_uri: null # if null, mlflow_tracking_uri will be used as mlflow default
  credentials: null  # must be a valid key in credentials.yml which refers to a dict of sensitive mlflow environment variables (password, tokens...). See top of the file.
  request_header_provider: # this is only useful to deal with expiring token, see https://github.com/Galileo-Galilei/kedro-mlflow/issues/357
    type: migrated_project.auth.TokenHeaderProvider # The path to a class : my_project.pipelines.module.MyClass.
    pass_context: True # should the class be instantiated with "kedro_context" argument?
    init_kwargs: {token: abc123} # any kwargs to pass to the class when it is instantiated

tracking:
  # You can specify a list of pipeline names for which tracking will be disabled
  disable_tracking:
    pipelines: [serving]
    disable_autologging: True

  experiment:
    name: migrated_project
    create_experiment_kwargs: # will be used only if the experiment does not exist yet!
      artifact_location: null
      tags:
        version: 2
    restore_if_deleted: True  # if the experiment`name` was previously deleted experiment, should we restore it?

  run:
    id: null # if `id` is None, a new run will be created
    name: null # if `name` is None, pipeline name will be used for the run name
    nested: True  # if `nested` is False, you won't be able to launch sub-runs inside your nodes

  params:
    dict_params:
      flatten: False  # if True, parameter which are dictionary will be splitted in multiple parameters when logged in mlflow, one for each key.
      recursive: True  # Should the dictionary flattening be applied recursively (i.e for nested dictionaries)? Not use if `flatten_dict_params` is False.
      sep: "." # In case of recursive flattening, what separator should be used between the keys? E.g. {hyperaparam1: {p1:1, p2:2}} will be logged as hyperaparam1.p1 and hyperaparam1.p2 in mlflow.
    long_params_strategy: fail # One of ["fail", "tag", "truncate" ] If a parameter is above mlflow limit (currently 250), what should kedro-mlflow do? -> fail, set as a tag instead of a parameter, or truncate it to its 250 first letters?

# UI-RELATED PARAMETERS -----------------
ui:
  port: "5000" # the port to use for the ui. Use mlflow default with 5000.
  host: "127.0.0.1"  # the host to use for the ui. Use mlflow efault of "127.0.0.1".
"""

KEDRO_MLFLOW_CATALOG = """
raw:
  type: pandas.CSVDataset
  filepath: data/01_raw/raw.csv

regressor:
  type: kedro_mlflow.io.artifacts.MlflowArtifactDataset
  dataset:
    type: pickle.PickleDataset
    filepath: data/06_models/regressor.pkl
  artifact_path: models

r2:
  type: kedro_mlflow.io.metrics.MlflowMetricDataset

loss_curve:
  type: kedro_mlflow.io.metrics.MlflowMetricHistoryDataset
  save_args:
    mode: history

scores:
  type: kedro_mlflow.io.metrics.MlflowMetricsHistoryDataset

sklearn_model:
  type: kedro_mlflow.io.models.MlflowModelTrackingDataset
  flavor: mlflow.sklearn

model_folder:
  type: kedro_mlflow.io.models.MlflowModelLocalFileSystemDataset
  flavor: mlflow.sklearn
  filepath: data/06_models/model_folder

registered_model:
  type: kedro_mlflow.io.models.MlflowModelRegistryDataset
  model_name: migrated_pipeline
  stage_or_version: latest
  pyfunc_workflow: python_model

served:
  type: pandas.CSVDataset
  filepath: data/07_model_output/served.csv
"""

NODES = '''
import mlflow
import pandas as pd
from sklearn.linear_model import LinearRegression


def train(raw: pd.DataFrame, parameters: dict):
    run = mlflow.active_run()  # kedro-mlflow users read the run here
    mlflow.set_tag("node_saw_run", run.info.run_id)
    mlflow.log_metric("logged_in_node", 1.0)
    model = LinearRegression(fit_intercept=parameters["fit_intercept"]).fit(raw[["a"]], raw["b"])
    history = [{"step": step, "value": 1.0 / (step + 1), "timestamp": 1_700_000_000_000 + step} for step in range(3)]
    return model, model, float(model.score(raw[["a"]], raw["b"])), history, {"mae": 0.5, "rmse": {"value": 0.7, "step": 1}}


def bundle(sklearn_model):
    return sklearn_model


def predict(regressor, instances: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"prediction": regressor.predict(instances[["a"]])})


def serve(registered_model, raw: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(registered_model.predict(raw))
'''

REGISTRY = '''
from kedro.pipeline import Pipeline, node
from kedro_mlflow.pipeline import pipeline_ml_factory


def register_pipelines():
    from {package}.nodes import bundle, predict, serve, train

    training = Pipeline([
        node(train, ["raw", "parameters"], ["regressor", "sklearn_model", "r2", "loss_curve", "scores"], name="train"),
        node(bundle, "sklearn_model", "model_folder", name="bundle"),
    ])
    inference = Pipeline([node(predict, ["regressor", "instances"], "predictions", name="predict")])
    training_ml = pipeline_ml_factory(
        training=training,
        inference=inference,
        input_name="instances",
        log_model_kwargs={{"artifact_path": "kedro_pipeline", "registered_model_name": "migrated_pipeline"}},
    )
    serving = Pipeline([node(serve, ["registered_model", "raw"], "served", name="serve")])
    return {{"__default__": training_ml, "training": training_ml, "serving": serving}}
'''

AUTH = '''
from mlflow.tracking.request_header.abstract_request_header_provider import RequestHeaderProvider


class TokenHeaderProvider(RequestHeaderProvider):
    def __init__(self, kedro_context, token):
        self.project = kedro_context.project_path.name
        self.token = token

    def in_context(self):
        return True

    def request_headers(self):
        return {"Authorization": f"Bearer {self.token}", "X-Project": self.project}
'''

# The notebook a kedro-mlflow user keeps: a session for the catalog and the store, then the
# documented `with mlflow.start_run(): metric_ds.save(0.3)` and a dataset reading a past run.
NOTEBOOK = '''
import json, sys
from pathlib import Path

import mlflow
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from kedro_mlflow.io.metrics import MlflowMetricDataset
from mlflow.tracking.request_header.registry import resolve_request_headers

root = Path(sys.argv[1]); past_run = sys.argv[2]
bootstrap_project(root)
with KedroSession.create(project_path=root) as session:
    context = session.load_context()
    out = {"tracking_uri": mlflow.get_tracking_uri()}
    out["past_r2"] = MlflowMetricDataset(key="r2", run_id=past_run).load()
    metric_ds = MlflowMetricDataset(key="my_metric")
    with mlflow.start_run() as run:
        metric_ds.save(0.3)
    out["notebook_run"] = run.info.run_id
    headers = resolve_request_headers()
    out["headers"] = {k: headers.get(k) for k in ("Authorization", "X-Project")}
print("RESULT" + json.dumps(out))
'''

RENAMES = {
    "kedro_mlflow.io.artifacts.": "kedro_mlflow_starter.io.",
    "kedro_mlflow.io.metrics.": "kedro_mlflow_starter.io.",
    "kedro_mlflow.io.models.": "kedro_mlflow_starter.io.",
    "from kedro_mlflow.io.metrics import": "from kedro_mlflow_starter.io import",
    "from kedro_mlflow.pipeline import": "from kedro_mlflow_starter import",
}


@pytest.fixture
def fresh_process_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The datasets' "no MLflow run is open" warning is once per process: not yet given, as in a new
    `kedro` process (the runs below are in this one)."""
    from kedro_mlflow_starter.io import _common

    monkeypatch.setattr(_common, "_warned_no_run", False)


def migrate(text: str) -> str:
    """The whole migration: the `type:` prefixes and the import lines, nothing else."""
    for old, new in RENAMES.items():
        text = text.replace(old, new)
    return text


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> KedroProject:
    project = make_project(
        tmp_path_factory.mktemp("migration"),
        package="migrated_project",
        nodes=migrate(NODES),
        registry=migrate(REGISTRY),
        parameters={"fit_intercept": True, "model_options": {"alpha": 0.1}},
        catalog={},
        raw_rows=6,
    )
    project.write("conf/base/catalog.yml", migrate(KEDRO_MLFLOW_CATALOG))
    project.write("conf/base/mlflow.yml", KEDRO_MLFLOW_YML)  # copied as it is
    project.write("src/migrated_project/auth.py", AUTH)
    project.write("notebook.py", migrate(NOTEBOOK))
    return project


def client_of(project: KedroProject):  # noqa: ANN201
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{(project.path / 'migrated.db').as_posix()}")


def runs(project: KedroProject) -> list:
    client = client_of(project)
    experiment = client.get_experiment_by_name("migrated_project")
    return [] if experiment is None else client.search_runs([experiment.experiment_id], max_results=1000)


@pytest.fixture(scope="module")
def runner_runs(migrated: KedroProject) -> dict[str, tuple[subprocess.CompletedProcess, str | None]]:
    """One `kedro run` per runner (share the project, one run each)."""
    results = {}
    for runner, context in [("SequentialRunner", None), ("ThreadRunner", None),
                            ("ParallelRunner", "fork"), ("ParallelRunner", "spawn")]:
        before = {r.info.run_id for r in runs(migrated)}
        if context:  # ParallelRunner's workers fork or spawn: a process of its own
            result = migrated.run("run", f"--runner={runner}", env={"KEDRO_MP_CONTEXT": context}, timeout=600)
        else:
            result = migrated.run_in_process("run", f"--runner={runner}")
        new = [r.info.run_id for r in runs(migrated) if r.info.run_id not in before]
        results[f"{runner}-{context}" if context else runner] = (result, new[0] if len(new) == 1 else None)
    return results


RUNNERS = ["SequentialRunner", "ThreadRunner", "ParallelRunner-fork", "ParallelRunner-spawn"]


@pytest.mark.parametrize("runner", RUNNERS)
def test_the_migrated_project_runs_green_and_lands_what_kedro_mlflow_documents(runner_runs, migrated, runner) -> None:
    result, run_id = runner_runs[runner]
    assert result.returncode == 0, result.stdout + result.stderr
    assert run_id is not None, "exactly one new run per kedro run"
    client = client_of(migrated)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    # item 3: mlflow.active_run() inside the node was the Kedro run, and fluent calls landed in it
    assert run.data.tags["node_saw_run"] == run_id
    assert run.data.metrics["logged_in_node"] == 1.0
    # item 6: metric datasets' names and shapes
    assert {"r2", "loss_curve", "scores.mae", "scores.rmse"} <= set(run.data.metrics)
    assert [m.timestamp for m in sorted(client.get_metric_history(run_id, "loss_curve"), key=lambda m: m.step)] == [
        1_700_000_000_000, 1_700_000_000_001, 1_700_000_000_002]
    # item 5: params read through `parameters` are logged under their own names
    assert run.data.params["fit_intercept"] == "True"
    assert run.data.params["model_options"] == json.dumps({"alpha": 0.1})
    # the artifact, the model logged under its entry name, the pipeline model registered
    assert [a.path for a in client.list_artifacts(run_id, "models")] == ["models/regressor.pkl"]
    models = client.search_logged_models(experiment_ids=[run.info.experiment_id],
                                         filter_string=f"source_run_id = '{run_id}'")
    assert {m.name for m in models} == {"sklearn_model", "kedro_pipeline"}
    assert "FutureWarning" in result.stderr + result.stdout and "artifact_path" in result.stderr + result.stdout


def test_item1_the_kedro_mlflow_yml_is_accepted_with_its_experiment_tags(runner_runs, migrated) -> None:
    client = client_of(migrated)
    assert client.get_experiment_by_name("migrated_project").tags["version"] == "2"


def test_item2_the_untracked_serving_pipeline_loads_the_registered_model_from_the_configured_store(
    runner_runs, migrated
) -> None:
    before = len(runs(migrated))
    result = migrated.run_in_process("run", "--pipeline=serving")
    assert result.returncode == 0, result.stdout + result.stderr
    served = (migrated.path / "data/07_model_output/served.csv").read_text().splitlines()
    assert len(served) == 1 + 6
    assert len(runs(migrated)) == before  # untracked: no run
    assert not (migrated.path / "mlflow.db").exists() and not (migrated.path / "mlruns").exists()


def test_items_1_2_4_the_notebook_talks_to_the_configured_store_and_the_users_run(runner_runs, migrated) -> None:
    _, past_run = runner_runs["SequentialRunner"]
    result = subprocess.run(
        [sys.executable, "notebook.py", str(migrated.path), past_run], cwd=migrated.path, env=project_env(),
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = json.loads(result.stdout.split("RESULT", 1)[1])
    assert out["tracking_uri"].endswith("migrated.db")
    assert out["past_r2"] == client_of(migrated).get_run(past_run).data.metrics["r2"]
    assert client_of(migrated).get_run(out["notebook_run"]).data.metrics == {"my_metric": 0.3}
    assert out["headers"] == {"Authorization": "Bearer abc123", "X-Project": migrated.path.name}


def test_the_registry_and_factory_carry_no_kedro_mlflow_name_after_migration(migrated) -> None:
    text = "".join(p.read_text() for p in [*migrated.path.glob("conf/base/catalog.yml"),
                                           *migrated.path.glob("src/migrated_project/*.py")])
    assert "kedro_mlflow." not in text and "kedro_mlflow_starter" in text


# -- issue 11 §1: opting out never breaks `kedro run` -----------------------------------------------

def test_with_the_hook_disabled_the_migrated_project_runs_locally_with_one_warning(
    tmp_path: Path, fresh_process_warnings: None
) -> None:
    project = make_project(tmp_path, package="migrated_project", nodes=migrate(NODES),
                           registry=migrate(REGISTRY), parameters={"fit_intercept": True}, catalog={}, raw_rows=6,
                           settings='DISABLE_HOOKS_FOR_PLUGINS = ("kedro-mlflow-starter",)\n')
    project.write("conf/base/catalog.yml", migrate(KEDRO_MLFLOW_CATALOG))
    project.write("conf/base/mlflow.yml", KEDRO_MLFLOW_YML)
    project.write("src/migrated_project/auth.py", AUTH)
    nodes = project.path / "src/migrated_project/nodes.py"  # no run: node code that needs one is the user's
    nodes.write_text(nodes.read_text().replace('    run = mlflow.active_run()  # kedro-mlflow users read the run here\n'
                                               '    mlflow.set_tag("node_saw_run", run.info.run_id)\n'
                                               '    mlflow.log_metric("logged_in_node", 1.0)\n', ""))

    result = project.run_in_process("run", "--pipeline=training")  # the warning is once per process
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert (project.path / "data/06_models/regressor.pkl").exists()
    assert (project.path / "data/06_models/model_folder/MLmodel").exists()  # loaded sklearn_model downstream
    assert output.count("no MLflow run is open") == 1
    assert "'regressor' (MlflowArtifactDataset)" in " ".join(output.split())
    assert not (project.path / "migrated.db").exists() and not (project.path / "mlruns").exists()


def test_item7_pipeline_model_api(tmp_path: Path) -> None:
    """KedroPipelineModel as kedro-mlflow documents it, in a fresh interpreter."""
    api = script_result("kedro_pipeline_model_api", {"folder": str(tmp_path)}, env=project_env(), timeout=120)
    assert set(api["artifacts"]) == {"model"}, api["artifacts"]
    assert api["bad_input_name"] is not None, "bad input_name accepted"
    assert "instances" in api["bad_input_name"]
    assert api["bad_copy_mode"] is not None, "copy_mode accepted"
    assert api["missing_catalog_entry"] is not None, "missing entry accepted"
    assert "model" in api["missing_catalog_entry"]
    assert api["wrong_artifacts"] is not None, "wrong artifacts accepted"
    assert "lacks ['model']" in api["wrong_artifacts"] and "other" in api["wrong_artifacts"]


def test_the_starter_project_runs_green_with_the_hook_disabled_as_its_readmes_say(
    tmp_path: Path, generated_tree: dict[str, bytes], fresh_process_warnings: None
) -> None:
    """Issue 11 §1: `kedro new --starter=mlflow-iris` (the session's generated project, copied
    as generated), then the opt-out line the READMEs give."""
    from tests.starter_fixtures import REPO_NAME

    root = tmp_path / REPO_NAME
    for relative, content in generated_tree.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(content)
    opt_out = 'DISABLE_HOOKS_FOR_PLUGINS = ("kedro-mlflow-starter",)'
    readme = (root / "README.md").read_text()
    [settings] = list(root.glob("src/*/settings.py"))
    assert opt_out in readme and f"src/{settings.parent.name}/settings.py" in readme  # what the README says to do
    assert opt_out in settings.read_text()  # offered in settings.py's docstring
    settings.write_text(settings.read_text() + f"\n{opt_out}\n")

    result = run_kedro_in_process("run", cwd=root)  # the warning is once per process
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 0, output
    assert output.count("no MLflow run is open") == 1
    assert "has no MLflow run to log into" not in output
    assert not (root / "mlflow.db").exists()  # nothing tracked, no store created


def test_item8_init_with_a_missing_environment_says_so_and_creates_nothing(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    result = project.run_in_process("mlflow", "init", "--env", "staging")
    assert result.returncode != 0
    assert "Environment 'staging' does not exist" in result.stderr + result.stdout
    assert "base, local" in result.stderr + result.stdout
    assert not (project.path / "conf/staging").exists()


def test_past_mlruns_runs_move_into_the_project_store_with_the_commands_the_doc_gives(tmp_path: Path) -> None:
    """Step 2 of docs/migrating-from-kedro-mlflow.md: a kedro-mlflow project's ./mlruns runs (a metric, then a
    model, as kedro-mlflow logs the pipeline model last), copied once into the store `mlflow_tracking_uri: null`
    now means, sit beside the first run of the plugin."""
    doc = (Path(__file__).parents[1] / "docs/migrating-from-kedro-mlflow.md").read_text()
    commands = [line.strip() for line in doc.split("   ```bash\n", 1)[1].split("   ```", 1)[0].splitlines()]
    assert commands[-1] == "mlflow migrate-filestore --source mlruns --target sqlite:///mlflow.db"
    project = make_project(tmp_path, mlflow_yml={"server": {"mlflow_tracking_uri": None}})
    past = script_result("log_a_kedro_mlflow_run", {"tracking_uri": "mlruns", "experiment": "demo_project"},
                         cwd=project.path, env=project_env({"MLFLOW_ALLOW_FILE_STORE": "true"}))
    for command in commands:
        moved = subprocess.run(command, shell=True, cwd=project.path, env=project_env(), capture_output=True,  # noqa: S602
                               text=True, timeout=300)
        assert moved.returncode == 0, f"{command}:\n{moved.stdout}{moved.stderr}"
    result = run_kedro_in_process("run", cwd=project.path)
    assert result.returncode == 0, result.stdout + result.stderr

    [old, new] = sorted(runs_of(project), key=lambda run: run.info.start_time)
    assert (old.info.run_id, old.data.metrics, old.data.params) == (past["run_id"], {"accuracy": 0.9}, {"C": "1"})
    client = client_for(project)
    assert [(m.value, m.step) for m in client.get_metric_history(old.info.run_id, "accuracy")] == [(0.9, 0)]
    [model] = logged_models_of_run(client, past["run_id"])
    assert (model.name, str(model.status)) == ("old_model", "READY")
    assert new.info.status == "FINISHED" and new.data.params["factor"] == "2.0"
