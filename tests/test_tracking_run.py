"""`kedro run` in a real project lands one complete, honest run in MLflow."""

from __future__ import annotations

import re
import shutil

import pytest
import yaml

from tests.project_factory import make_project
from tests.tracking_helpers import client_for, only_run, output, runs_of


def test_init_then_run_from_a_subfolder_logs_one_complete_run(tmp_path, migrated_db):
    project = make_project(tmp_path)
    init = project.run_in_process("mlflow", "init", cwd=project.path / "src")
    assert init.returncode == 0, output(init)
    shipped = (project.conf / "base" / "mlflow.yml").read_text()
    assert "mlflow_tracking_uri: null" in shipped and "name: demo_project" in shipped
    project.write_yaml("conf/local/mlflow.yml", {"tracking": {"params": {"dict_params": {"flatten": True}}}})

    result = project.run_in_process("run", cwd=project.path / "src" / "demo_project")

    assert result.returncode == 0, output(result)
    assert project.db.is_file(), "the store must be <project root>/mlflow.db whatever the shell's folder"
    assert not (project.path / "src" / "demo_project" / "mlflow.db").exists()
    assert not (project.path / "src" / "demo_project" / "mlruns").exists()
    run = only_run(project)
    assert run.info.status == "FINISHED"
    assert re.fullmatch(r"default \d\d:\d\d:\d\d", run.info.run_name), run.info.run_name
    assert run.data.params == {"factor": "2.0", "model_options.bias": "1.5", "model_options.layers.depth": "3"}
    tags = run.data.tags
    assert tags["kedro.pipeline_names"] == "__default__"
    assert tags["kedro.runner"] == "SequentialRunner"
    assert tags["kedro.command"] == "kedro run"
    assert tags["kedro.version"][0].isdigit() and tags["kedro_mlflow_starter.version"][0].isdigit()
    assert not any("object at 0x" in value for value in tags.values())
    assert run.info.artifact_uri.startswith((project.path / "mlartifacts").as_uri())
    assert "kedro mlflow ui" in output(result)
    assert "Creating initial MLflow database tables" not in output(result), "MLflow's INFO chatter is shown"


def test_params_are_logged_whole_without_flatten_and_runner_and_pipelines_are_tagged(project):
    result = project.run_in_process("run", "--pipelines", "processing,summary", "--runner", "ThreadRunner")
    assert result.returncode == 0, output(result)
    run = only_run(project)
    assert re.fullmatch(r"processing\+summary \d\d:\d\d:\d\d", run.info.run_name), run.info.run_name
    assert run.data.params["model_options"] == '{"bias": 1.5, "layers": {"depth": 3}}'
    assert run.data.tags["kedro.runner"] == "ThreadRunner"
    assert run.data.tags["kedro.command"] == "kedro run --pipelines=processing,summary --runner=ThreadRunner"


def test_only_parameters_the_pipeline_reads_are_logged(project):
    result = project.run_in_process("run", "--pipelines", "processing")
    assert result.returncode == 0, output(result)
    assert only_run(project).data.params == {"factor": "2.0"}


def test_a_failing_node_marks_the_run_failed_and_exits_non_zero(tmp_path, migrated_db):
    nodes = "def double(df, factor):\n    raise ValueError('boom in node')\n\ndef total(df, o):\n    return 1.0\n"
    project = make_project(tmp_path, nodes=nodes)
    shutil.copy(migrated_db, project.db)
    result = project.run_in_process("run")
    assert result.returncode != 0
    assert "boom in node" in output(result)
    assert only_run(project).info.status == "FAILED"


def test_disabled_pipeline_opens_no_run(project):
    project.write_yaml("conf/base/mlflow.yml", {"tracking": {"disable_tracking": {"pipelines": ["processing"]}}})
    result = project.run_in_process("run", "--pipelines", "processing")
    assert result.returncode == 0, output(result)
    assert runs_of(project) == []
    assert (project.path / "data/02_intermediate/doubled.csv").is_file()
    assert "not tracked" in output(result)


def test_local_mlflow_yml_overrides_one_key_and_keeps_the_others(project):
    project.write_yaml(
        "conf/base/mlflow.yml",
        {"tracking": {"experiment": {"name": "base_experiment"}, "run": {"name": "from-base"}}},
    )
    project.write_yaml("conf/local/mlflow.yml", {"tracking": {"run": {"name": "from-local"}}})
    result = project.run_in_process("run")
    assert result.returncode == 0, output(result)
    run = only_run(project, experiment="base_experiment")
    assert run.info.run_name == "from-local"


@pytest.mark.parametrize("random_name", ["${km.random_name:}", "${km.random_name:null}"])  # ours, kedro-mlflow's
def test_run_name_interpolation_env_and_random_name(project, random_name):
    project.write(
        "conf/base/mlflow.yml",
        f"""
        tracking:
          experiment:
            name: ${{oc.env:EXPERIMENT_FROM_ENV}}
          run:
            name: "{random_name}"
        """,
    )
    result = project.run_in_process("run", env={"EXPERIMENT_FROM_ENV": "from_env"})
    assert result.returncode == 0, output(result)
    name = only_run(project, experiment="from_env").info.run_name
    adjective, noun, number = name.split("-")
    assert adjective.isalpha() and noun.isalpha() and number.isdigit()


def test_relative_sqlite_uri_resolves_against_project_root(project):
    project.write_yaml("conf/base/mlflow.yml", {"server": {"mlflow_tracking_uri": "sqlite:///stores/team.db"}})
    result = project.run_in_process("run", cwd=project.path / "conf")
    assert result.returncode == 0, output(result)
    store = project.path / "stores" / "team.db"
    assert store.is_file()
    assert only_run(project, uri=f"sqlite:///{store}").info.status == "FINISHED"


def test_tracking_uri_from_environment_is_used_when_mlflow_yml_has_none(project, tmp_path):
    elsewhere = tmp_path / "env-store.db"
    shutil.copy(project.db, elsewhere)
    project.db.unlink()
    result = project.run_in_process("run", env={"MLFLOW_TRACKING_URI": f"sqlite:///{elsewhere}"})
    assert result.returncode == 0, output(result)
    assert not project.db.exists()
    assert only_run(project, uri=f"sqlite:///{elsewhere}").info.status == "FINISHED"


def test_resume_a_run_by_id(project):
    assert project.run_in_process("run").returncode == 0
    first = only_run(project)
    project.write_yaml("conf/base/mlflow.yml", {"tracking": {"run": {"id": first.info.run_id}}})
    result = project.run_in_process("run", "--pipelines", "processing")
    assert result.returncode == 0, output(result)
    again = only_run(project)
    assert again.info.run_id == first.info.run_id and again.info.status == "FINISHED"


def test_resuming_a_run_with_other_parameter_values_is_refused_and_leaves_the_run_as_it_was(project):
    assert project.run_in_process("run").returncode == 0
    first = only_run(project)
    project.write_yaml("conf/base/mlflow.yml", {"tracking": {"run": {"id": first.info.run_id}}})
    data = {path: path.read_bytes() for path in (project.path / "data").rglob("*") if path.is_file()}

    result = project.run_in_process("run", "--params", "factor=3")

    assert result.returncode == 1, output(result)
    text = output(result)
    assert "Traceback" not in text and len(text.splitlines()) < 25, text
    assert f"MLflow run {first.info.run_id}" in text and "factor: '2.0' logged, '3' now" in text, text
    assert "`tracking.run.id` in mlflow.yml: remove that key to log a new run" in text, text
    again = only_run(project)
    assert again.info.status == "FINISHED", "the refused resume reopened the run"
    assert again.data.params == first.data.params and again.info.end_time == first.info.end_time
    assert {path: path.read_bytes() for path in data} == data


def test_a_run_id_that_names_no_run_says_where_the_id_came_from(project):
    missing = "0123456789abcdef0123456789abcdef"
    from_env = project.run_in_process("run", env={"MLFLOW_RUN_ID": missing})
    project.write_yaml("conf/base/mlflow.yml", {"tracking": {"run": {"id": missing}}})
    from_yml = project.run_in_process("run")

    for result, source in ((from_env, "handed down by MLFLOW_RUN_ID: unset it"),
                           (from_yml, "resumed by `tracking.run.id` in mlflow.yml")):
        text = output(result)
        assert result.returncode == 1 and "Traceback" not in text, text
        assert f"MLflow run '{missing}' was not found in sqlite:///" in text and source in text, text
        assert len(text.splitlines()) < 25, text
    assert runs_of(project) == []


def test_secret_runtime_params_are_redacted_everywhere(project):
    parameters = yaml.safe_load((project.conf / "base/parameters.yml").read_text())
    parameters["model_options"]["api_token"] = "placeholder"
    project.write_yaml("conf/base/parameters.yml", parameters)
    secret = "s3cr3t-VALUE-123"
    result = project.run_in_process("run", "--params", f"model_options.api_token={secret},factor=3")
    assert result.returncode == 0, output(result)
    run = only_run(project)
    everything = repr(run.data.params) + repr(run.data.tags) + repr(run.data.metrics)
    assert secret not in everything
    assert "***" in run.data.params["model_options"]
    assert run.data.params["factor"] == "3"
    assert run.data.tags["kedro.command"] == "kedro run '--params=model_options.api_token=***,factor=3'"


def test_two_sessions_in_one_process_log_two_runs(project):
    from tests.project_factory import project_env, script_result

    done = script_result("run_kedro_sessions", {"project_path": str(project.path), "sessions": [
        {"pipeline_names": ["processing"]}, {"pipeline_names": ["summary"]}]},
        cwd=project.path, env=project_env(), timeout=300)
    assert done["run_env_after"] == [[], []]  # neither KEDRO_MLFLOW_RUN_ID nor MLFLOW_RUN_ID left set
    runs = runs_of(project)
    assert sorted(r.info.run_name.split()[0] for r in runs) == ["processing", "summary"]
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert runs[0].data.params != runs[1].data.params


def test_opting_out_with_disable_hooks_for_plugins(project):
    project.write("src/demo_project/settings.py", 'DISABLE_HOOKS_FOR_PLUGINS = ("kedro-mlflow-starter",)\n')
    result = project.run_in_process("run")
    assert result.returncode == 0, output(result)
    assert runs_of(project) == []


def test_experiment_created_with_configured_tags_and_restored_when_deleted(project):
    project.write_yaml(
        "conf/base/mlflow.yml",
        {"tracking": {"experiment": {"create_experiment_kwargs": {"tags": {"team": "iris"}}}}},
    )
    assert project.run_in_process("run").returncode == 0
    client = client_for(project)
    experiment = client.get_experiment_by_name("demo_project")
    assert experiment.tags["team"] == "iris"
    client.delete_experiment(experiment.experiment_id)
    result = project.run_in_process("run")
    assert result.returncode == 0, output(result)
    assert len(runs_of(project)) == 2
    client.delete_experiment(experiment.experiment_id)
    project.write_yaml("conf/base/mlflow.yml", {"tracking": {"experiment": {"restore_if_deleted": False}}})
    refused = project.run_in_process("run")
    assert refused.returncode != 0
    assert "restore_if_deleted" in output(refused) and "is deleted" in output(refused)


def test_a_local_folder_store_chosen_in_mlflow_yml_works_from_any_folder(project, monkeypatch):
    project.write_yaml("conf/base/mlflow.yml", {"server": {"mlflow_tracking_uri": "mlruns"}})
    result = project.run_in_process("run", cwd=project.path / "src")
    assert result.returncode == 0, output(result)
    assert not (project.path / "src" / "mlruns").exists()
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # to read it back here
    assert only_run(project, uri=(project.path / "mlruns").as_uri()).info.status == "FINISHED"
