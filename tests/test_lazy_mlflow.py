"""Loading the plugin's entry points, config and catalog never imports mlflow."""

from __future__ import annotations

from tests.project_factory import project_env, script_result


def test_kedro_help_and_context_creation_do_not_import_mlflow(project):
    started = script_result("start_kedro_in_project", {"project_path": str(project.path)}, cwd=project.path,
                            env=project_env(), timeout=120)
    assert started["experiment_name"] == "demo_project"
    assert "mlflow" in started["help"]  # the help text lists our command group
    assert not [m for m in started["modules"] if m == "mlflow" or m.startswith("mlflow.")]
