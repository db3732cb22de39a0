"""Issue 11 §4: a logged pipeline model needs nothing that a package index does not serve.

What `mlflow models serve --env-manager uv` does: `uv venv`, `uv pip install -r
<model>/requirements.txt`, load the model there (the virtualenv manager installs the same
requirements with pip, only slower). kedro-mlflow-starter is on no index yet, so the model
must carry it.

The venv is cached under ``<repo>/.cache/model-venvs/<hash of requirements.txt and Python>``
(git-ignored): a rerun with the same requirements reuses it. Cold, uv builds it in seconds
(pip took 75 s on 2 shared cores).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.project_factory import script_result
from tests.starter_fixtures import (
    INSTANCE_ROWS,
    REPO,
    GeneratedProject,
    assert_ok,
    iris_frame,
    kedro_new,
    write_config,
)

PACKAGE = "served_anywhere"
CACHE = REPO / ".cache" / "model-venvs"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> GeneratedProject:
    out = tmp_path_factory.mktemp("venv-model")
    config = write_config(out / "config.yml", project_name="Served Anywhere",
                          mlflow_tracking_uri="sqlite:///mlflow.db", output_dir=str(out))
    assert_ok(kedro_new("--starter=mlflow-iris", f"--config={config}", cwd=out, home=out / "home"), "kedro new")
    project = GeneratedProject(out / "served-anywhere", out / "home")
    assert_ok(project.kedro("run"), "kedro run")
    return project


def model_venv(requirements: Path) -> Path:
    """A venv holding exactly ``requirements``, built once per distinct file and Python.

    Built in place and marked complete last: an interrupted build is removed and redone.
    A lock file serialises the builds: xdist's workers may run this module's tests at once.
    """
    key = hashlib.sha256(requirements.read_bytes() + sys.version.encode()).hexdigest()[:16]
    venv = CACHE / key
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / f"{key}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        return venv if (venv / ".complete").is_file() else _build_venv(venv, requirements)


def _build_venv(venv: Path, requirements: Path) -> Path:
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    uv = Path(sys.executable).with_name("uv")  # the test extra's uv, as MLflow's uv env manager runs it
    subprocess.run([str(uv), "venv", "--quiet", "--python", sys.executable, str(venv)], check=True, timeout=300)
    done = subprocess.run([str(uv), "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"),
                           "-r", str(requirements)], capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, f"uv pip install -r {requirements} failed:\n{done.stdout}\n{done.stderr[-5000:]}"
    (venv / ".complete").write_text(requirements.read_text())
    return venv


def test_model_requirements_name_only_what_an_index_serves(trained: GeneratedProject):
    folder = _pipeline_model_folder(trained)
    requirements = (folder / "requirements.txt").read_text().split()
    assert requirements and all("==" in line for line in requirements), requirements
    names = {line.split("==")[0].lower() for line in requirements}
    assert "kedro-mlflow-starter" not in names
    assert PACKAGE.replace("_", "-") not in names and PACKAGE not in names
    assert {"kedro", "mlflow", "scikit-learn", "kedro-datasets", "pandas"} <= names
    assert (folder / "code/kedro_mlflow_starter/models/kedro_pipeline_model.py").is_file()
    assert (folder / f"code/{PACKAGE}/pipelines/inference/nodes.py").is_file()


def test_fresh_venv_with_only_the_models_requirements_loads_and_predicts(trained: GeneratedProject, tmp_path: Path):
    folder = _pipeline_model_folder(trained)
    venv = model_venv(folder / "requirements.txt")
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "TMPDIR": str(tmp_path),
           "MLFLOW_TRACKING_URI": trained.tracking_uri, "KEDRO_DISABLE_TELEMETRY": "true"}
    # The script runs with the venv's Python, from this checkout's tests/scripts: nothing of the
    # checkout is importable from there (the project and the plugin must come with the model).
    result = script_result(
        "predict_with_model",
        {"must_not_import": ["kedro_mlflow_starter", PACKAGE],
         "input": {"csv": str(trained.path / "data/05_model_input/instances.csv")},
         "predictions": {"latest": {"model_uri": f"models:/{PACKAGE}/latest"}},
         "module_files": ["kedro_mlflow_starter"]},
        what="loading the model in a venv built from its requirements.txt",
        python=venv / "bin" / "python", cwd=tmp_path, env=env, timeout=300)
    assert not result["importable"]["kedro_mlflow_starter"], "the plugin must not be installed here"
    assert not result["importable"][PACKAGE], "nor the project"
    output = {"species": result["predictions"]["latest"]["data"]["species"],
              "plugin_from": result["module_files"]["kedro_mlflow_starter"]}
    assert output["species"] == iris_frame().loc[list(INSTANCE_ROWS), "species"].tolist()
    assert "/code/kedro_mlflow_starter/" in output["plugin_from"]


def _pipeline_model_folder(project: GeneratedProject) -> Path:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=project.tracking_uri)
    experiment = client.get_experiment_by_name(PACKAGE)
    (model,) = [m for m in client.search_logged_models(experiment_ids=[experiment.experiment_id])
                if m.name == "iris_pipeline_model"]
    folder = Path(model.artifact_location.removeprefix("file://"))
    assert (folder / "MLmodel").is_file(), folder
    return folder
