"""Every bad mlflow.yml stops `kedro run` before any node runs, with one clear message."""

from __future__ import annotations

import pytest
from kedro.config import OmegaConfigLoader

from kedro_mlflow_starter.config import MlflowConfigError, load_mlflow_config
from tests.tracking_helpers import output, runs_of

BAD_FILES = {
    "malformed_yaml": (
        "tracking:\n  experiment:\n    name: [unclosed\n",
        ["conf/base/mlflow.yml", "Invalid YAML"],
    ),
    "unknown_key": (
        "tracking:\n  experimnt:\n    name: x\n",
        ["conf/base/mlflow.yml", "tracking.experimnt", "Allowed keys here", "experiment"],
    ),
    "wrong_type": (
        "ui:\n  port: not-a-port\n",
        ["conf/base/mlflow.yml", "ui.port", "not-a-port", "integer"],
    ),
    "bad_strategy": (
        "tracking:\n  params:\n    long_params_strategy: maybe\n",
        ["conf/base/mlflow.yml", "tracking.params.long_params_strategy", "maybe", "'fail', 'truncate' or 'tag'"],
    ),
    "bad_uri_scheme": (
        "server:\n  mlflow_tracking_uri: ftp://example/store\n",
        ["conf/base/mlflow.yml", "server.mlflow_tracking_uri", "ftp", "sqlite:///"],
    ),
    "missing_credentials_entry": (
        "server:\n  credentials: team_server\n",
        ["server.credentials", "team_server", "credentials.yml"],
    ),
    "unknown_top_level_key": (
        "servers:\n  mlflow_tracking_uri: sqlite:///x.db\n",
        ["unknown key 'servers'", "Allowed keys here: server, tracking, ui."],  # not the plugin's own fields
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_mlflow_yml_fails_before_any_node_runs(project, case):
    text, expected = BAD_FILES[case]
    project.write("conf/base/mlflow.yml", text)
    raw_before = (project.path / "data/01_raw/raw.csv").read_bytes()

    result = project.run_in_process("run")

    assert result.returncode != 0
    message = output(result)
    for fragment in expected:
        assert fragment in message, f"{fragment!r} missing from:\n{message}"
    assert not (project.path / "data/02_intermediate/doubled.csv").exists(), "a node ran"
    assert (project.path / "data/01_raw/raw.csv").read_bytes() == raw_before
    assert runs_of(project) == []


def test_bad_key_in_local_override_names_the_local_file(project):
    project.write("conf/base/mlflow.yml", "tracking:\n  run:\n    name: ok\n")
    project.write("conf/local/mlflow.yml", "tracking:\n  run:\n    nested: sometimes\n")
    loader = OmegaConfigLoader(conf_source=str(project.conf), base_env="base", default_run_env="local")
    with pytest.raises(MlflowConfigError) as raised:  # what `kedro run` prints, before any node (the cases above)
        load_mlflow_config(loader, project.path, project.package)
    assert "conf/local/mlflow.yml" in str(raised.value) and "tracking.run.nested" in str(raised.value)


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [("fail", None), ("truncate", "param"), ("tag", "tag")],
)
def test_long_parameter_values_follow_the_strategy(project, strategy, expected):
    project.write_yaml("conf/base/parameters.yml", {"factor": 2.0, "model_options": {"bias": 1.0, "blob": "x" * 7000}})
    project.write_yaml("conf/base/mlflow.yml", {"tracking": {"params": {"long_params_strategy": strategy}}})
    result = project.run_in_process("run")
    runs = runs_of(project)
    if expected is None:
        assert result.returncode != 0
        assert "model_options" in output(result) and "long_params_strategy" in output(result)
        assert not (project.path / "data/02_intermediate/doubled.csv").exists()
        assert runs == []
        return
    assert result.returncode == 0, output(result)
    (run,) = runs
    if expected == "param":
        assert len(run.data.params["model_options"]) == 6000
    else:
        assert "model_options" not in run.data.params
        assert '"blob": "xxx' in run.data.tags["model_options"]


def test_parameter_names_mlflow_rejects_are_sanitised_with_a_warning(project):
    project.write_yaml("conf/base/parameters.yml", {"factor": 2.0, "model_options": {"bias": 1.0, "weird#key!": 5}})
    project.write_yaml("conf/base/mlflow.yml", {"tracking": {"params": {"dict_params": {"flatten": True}}}})
    result = project.run_in_process("run")
    assert result.returncode == 0, output(result)
    (run,) = runs_of(project)
    assert run.data.params["model_options.weird_key_"] == "5"
    assert "weird#key!" in output(result) and "model_options.weird_key_" in output(result)
