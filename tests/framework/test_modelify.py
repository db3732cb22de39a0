"""`kedro mlflow modelify`: log a registered pipeline as a model without training (in process, but for the training
run and the loads of the logged models)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.pipeline_ml_fixtures import SETTINGS_WITHOUT_PLUGIN_HOOK, isolated_env, make_iris_project, runs_of
from tests.framework.conftest import explained
from tests.project_factory import script_result


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, migrated_db: Path):
    """The iris project trained once by an untracked `kedro run` (no model logged yet)."""
    created = make_iris_project(tmp_path_factory.mktemp("modelify"), migrated_db, settings=SETTINGS_WITHOUT_PLUGIN_HOOK)
    created.run_in_process("run", check=True)
    return created


@pytest.fixture(scope="module")
def client(project):
    from mlflow import MlflowClient

    return MlflowClient(project.tracking_uri)


def _model_id(stdout: str) -> str:
    return stdout.split("as models:/", 1)[1].split()[0]


def test_modelify_plain_pipeline_from_a_subfolder_logs_a_loadable_registered_model(project, client, tmp_path, kedro_mlflow):
    result = kedro_mlflow(
        project, "modelify", "--pipeline", "inference", "--input-name", "instances",
        "--registered-model-name", "iris-modelified", "--run-name", "from-artifacts",
        cwd=project.path / "data" / "06_models",
    )
    assert result.exit_code == 0, explained(result)
    model_id = _model_id(result.stdout)
    # the printed commands work from the folder it ran in: they name the project's store
    assert f"  export MLFLOW_TRACKING_URI={project.tracking_uri}\n  mlflow models serve -m models:/{model_id} " \
           "--env-manager local" in result.stdout, result.stdout
    assert "Successfully registered model" not in result.stdout + result.stderr  # MLflow's print is a log line

    run = runs_of(client, "iris_ml")[-1]
    assert run.info.run_name == "from-artifacts"
    assert run.info.status == "FINISHED"
    assert [o.model_id for o in run.outputs.model_outputs] == [model_id]
    assert [str(v.version) for v in client.search_model_versions("name = 'iris-modelified'")] == ["1"]

    loaded = script_result(
        "predict_with_model",
        {"input": {"csv": str(project.path / "data/05_model_input/instances.csv")},
         "predictions": {"labels": {"model_uri": "models:/iris-modelified/1", "rows": 3}}},
        cwd=tmp_path,
        env=isolated_env({"MLFLOW_TRACKING_URI": project.tracking_uri}),
        timeout=120,
    )
    assert all(label.startswith("iris-") for label in loaded["predictions"]["labels"]["data"]["label"])


def test_modelify_pipeline_ml_into_an_existing_run_with_given_requirements(project, client, kedro_mlflow):
    experiment = client.get_experiment_by_name("iris_ml") or client.get_experiment(
        client.create_experiment("iris_ml", artifact_location=(project.path / "mlartifacts").as_uri())
    )
    run_id = client.create_run(experiment.experiment_id).info.run_id
    result = kedro_mlflow(
        project, "modelify", "--pipeline", "training", "--run-id", run_id, "--model-name", "iris_model",
        "--no-infer-input-example", "--pip-requirements", "scikit-learn", "--pip-requirements", "kedro",
    )
    assert result.exit_code == 0, explained(result)
    model = client.get_logged_model(_model_id(result.stdout))
    assert model.source_run_id == run_id
    assert model.name == "iris_model"
    folder = Path(model.artifact_location.removeprefix("file://"))
    requirements = (folder / "requirements.txt").read_text().split()
    assert requirements[-2:] == ["scikit-learn", "kedro"]  # MLflow prepends its own pin
    assert not any(line.startswith(("pandas", "kedro-datasets")) for line in requirements)
    assert not (folder / "input_example.json").exists()
    assert client.get_run(run_id).info.status == "RUNNING"  # not ours to end


def test_kedro_mlflow_options_copy_mode_code_paths_extra_requirements_and_artifact_path(project, client, tmp_path, kedro_mlflow):
    helper = tmp_path / "serving_helpers.py"
    helper.write_text("GREETING = 'shipped with the model'\n")
    result = kedro_mlflow(
        project, "modelify", "--pipeline", "training", "--artifact-path", "legacy_name",
        "--copy-mode", '{"scaler": "deepcopy"}', "--code-path", str(helper),
        "--extra-pip-requirements", "tabulate==0.9.0", "--registered-model-name", "iris-options",
        "--await-registration-for", "5", "--no-infer-input-example",
    )
    assert result.exit_code == 0, explained(result)
    assert "--artifact-path is kedro-mlflow's name for --model-name" in result.stderr
    model = client.get_logged_model(_model_id(result.stdout))
    assert model.name == "legacy_name"
    folder = Path(model.artifact_location.removeprefix("file://"))
    assert (folder / "requirements.txt").read_text().split()[-1] == "tabulate==0.9.0"
    assert (folder / "code" / "serving_helpers.py").is_file()
    assert [str(v.version) for v in client.search_model_versions("name = 'iris-options'")] == ["1"]
    loaded = script_result(
        "copy_mode_of_model",
        {"model_uri": f"models:/{model.model_id}"},
        cwd=tmp_path,
        env=isolated_env({"MLFLOW_TRACKING_URI": project.tracking_uri}),
        timeout=120,
    )
    assert loaded["copy_mode"] == {"scaler": "deepcopy"}  # the others are handed as they are


def test_conda_env_replaces_pip_requirements(project, client, tmp_path, kedro_mlflow):
    env_file = tmp_path / "conda.yaml"
    env_file.write_text("name: iris\ndependencies:\n  - python=3.11\n  - pip:\n    - scikit-learn\n")
    result = kedro_mlflow(project, "modelify", "--pipeline", "training", "--conda-env", str(env_file),
                         "--no-infer-input-example")
    assert result.exit_code == 0, explained(result)
    folder = Path(client.get_logged_model(_model_id(result.stdout)).artifact_location.removeprefix("file://"))
    assert "scikit-learn" in (folder / "conda.yaml").read_text()
    assert "kedro-datasets" not in (folder / "requirements.txt").read_text()


def test_bad_input_name_lists_valid_inputs(project, kedro_mlflow):
    result = kedro_mlflow(project, "modelify", "--pipeline", "inference", "--input-name", "rows")
    assert result.exit_code != 0
    output = " ".join(result.stderr.split())
    assert "input_name='rows' is not an input" in output
    assert "Its inputs are: 'classifier', 'instances', 'label_map', 'scaler'" in output


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--pipeline", "trainin"], "No pipeline named 'trainin' is registered. Registered pipelines: __default__,"),
        (["--pipeline", "processing"], "'processing' is not a PipelineML: give --input-name"),
        (["--pipeline", "training", "--run-id", "0123abcd"], "MLflow run '0123abcd' was not found"),
        (["--pipeline", "training", "--run-id", "a", "--run-name", "b"], "give only one"),
        (["--pipeline", "training", "--copy-mode", "clone"], "copy_mode 'clone' for 'classifier' is not valid. Allowed: assign, copy, deepcopy"),
        (["--pipeline", "training", "--copy-mode", "{scaler: deep"], "Invalid value for --copy-mode: not valid JSON"),
        (["--pipeline", "training", "--conda-env", "missing.yaml"], "'missing.yaml' does not exist"),
        (["--pipeline", "training", "--conda-env", "pyproject.toml", "--pip-requirements", "x"], "--conda-env replaces pip requirements"),
    ],
)
def test_bad_arguments_are_explained(project, args, expected, kedro_mlflow):
    result = kedro_mlflow(project, "modelify", *args)
    assert result.exit_code != 0
    assert expected in " ".join((result.stdout + result.stderr).split())


def test_outside_a_project_the_command_explains_where_to_run_it(tmp_path):
    import os

    from click.testing import CliRunner

    from kedro_mlflow_starter.framework.modelify import modelify

    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        result = CliRunner().invoke(modelify, ["--pipeline", "training"])
    finally:
        os.chdir(cwd)
    assert result.exit_code != 0
    assert "No Kedro project found" in result.output


def test_importing_the_command_does_not_import_mlflow():
    imported = script_result("modules_imported_by", {"imports": ["kedro_mlflow_starter.framework.modelify:modelify"]},
                             timeout=60)
    assert "mlflow" not in imported["modules"]


def test_modelify_before_training_names_the_missing_artifact_and_leaves_no_run(project, client, kedro_mlflow):
    classifier = project.path / "data" / "06_models" / "classifier.pkl"  # versioned: a folder of versions
    hidden = classifier.with_name(classifier.name + ".away")
    runs_before = len(runs_of(client, "iris_ml"))
    classifier.rename(hidden)
    try:
        result = kedro_mlflow(project, "modelify", "--pipeline", "training")
    finally:
        hidden.rename(classifier)
    text = " ".join((result.stdout + result.stderr).split())
    assert result.exit_code != 0 and "Traceback" not in text, text
    assert "its artifact(s) classifier do not exist yet" in text, text
    assert "`kedro run --to-outputs=classifier`" in text, text
    assert len(runs_of(client, "iris_ml")) == runs_before, "a failed modelify left an empty run"
