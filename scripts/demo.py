"""`make demo`: the quickstart a user follows, end to end, in a scratch folder.

1. `kedro new --starter=mlflow-iris` (the alias of the installed package) into .demo/
2. install the project's requirements, only if something is missing
3. `kedro run` in the new project
4. read the run back from MLflow and print what it holds, and the commands to type next
   (they work in a new shell: they start by activating the virtualenv that holds `kedro`)
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / ".demo"
PROJECT_NAME = "Iris Demo"
PROJECT = DEMO / "iris-demo"
PACKAGE = "iris_demo"
BIN = Path(sys.executable).parent


def step(message: str) -> None:
    print(f"\n==> {message}", flush=True)


def call(*args: str, cwd: Path, env: dict[str, str]) -> None:
    result = subprocess.run(args, cwd=cwd, env=env)
    if result.returncode != 0:
        sys.exit(f"demo: `{' '.join(args)}` failed with exit code {result.returncode}")


def missing_requirements(requirements: Path) -> list[str]:
    """The lines of requirements.txt that this interpreter does not satisfy (extras included)."""
    from importlib.metadata import PackageNotFoundError, distribution

    from packaging.requirements import Requirement

    def unmet(requirement: Requirement, seen: set[str]) -> bool:
        if requirement.name.lower() in seen:
            return False
        seen.add(requirement.name.lower())
        try:
            dist = distribution(requirement.name)
        except PackageNotFoundError:
            return True
        if not requirement.specifier.contains(dist.version, prereleases=True):
            return True
        for extra in requirement.extras:
            for line in dist.requires or []:
                needed = Requirement(line)
                if needed.marker and needed.marker.evaluate({"extra": extra}) and unmet(needed, seen):
                    return True
        return False

    lines = [line.strip() for line in requirements.read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("#") and unmet(Requirement(line), set())]


PIPELINE_MODEL = "iris_pipeline_model"  # log_model_kwargs name in the starter's pipeline_registry.py


def summary(tracking_uri: str) -> int:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(PACKAGE)
    if experiment is None:
        print(f"demo: no experiment {PACKAGE!r} in {tracking_uri}", file=sys.stderr)
        return 1
    (run,) = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=1)
    models = client.search_logged_models(
        experiment_ids=[experiment.experiment_id], filter_string=f"source_run_id = '{run.info.run_id}'"
    )
    artifacts = [info.path for folder in client.list_artifacts(run.info.run_id)
                 for info in (client.list_artifacts(run.info.run_id, folder.path) if folder.is_dir else [folder])]
    model_uris = {model.name: f"models:/{model.model_id}" for model in models}

    print(f"  experiment : {experiment.name} (id {experiment.experiment_id})")
    print(f"  run        : {run.info.run_name} ({run.info.run_id})")
    print(f"  status     : {run.info.status}")
    print(f"  params     : {len(run.data.params)} ({', '.join(sorted(run.data.params))})")
    for name, value in sorted(run.data.metrics.items()):
        print(f"  metric     : {name} = {value:.4f}")
    for path in artifacts:
        print(f"  artifact   : {path}")
    for name, uri in sorted(model_uris.items()):
        print(f"  model      : {name} -> {uri}")

    model_uri = model_uris.get(PIPELINE_MODEL, "models:/<model id>")
    print("\nNext, in a new shell (paste as it is; the last line serves the MLflow UI until Ctrl-C):")
    for line in next_steps(PROJECT):
        print(f"  {line}")
    print("\nThen, in another new shell, serve the pipeline model (it answers until Ctrl-C):")
    for line in serve_steps(PROJECT, model_uri):
        print(f"  {line}")
    return 0 if run.info.status == "FINISHED" and PIPELINE_MODEL in model_uris else 1


# The commands that keep running until Ctrl-C: each ends the block it is in, so a pasted block
# runs every line before it.
BLOCKING = ("kedro mlflow ui", "mlflow models serve")


def _setup(project: Path, bin_dir: Path) -> list[tuple[str, str]]:
    """Activate the virtualenv that holds ``kedro`` and ``mlflow``, then go to the project."""
    activate = bin_dir / "activate"
    if activate.is_file():
        setup = f"source {shlex.quote(str(activate))}"
    else:  # not a virtualenv: put its scripts first on PATH
        setup = f'export PATH={shlex.quote(str(bin_dir))}:"$PATH"'
    return [(setup, "kedro and mlflow are installed in this virtualenv"),
            (f"cd {shlex.quote(str(project))}", "the demo project")]


def _commented(steps: list[tuple[str, str]]) -> list[str]:
    width = max(len(command) for command, _ in steps[:-1])  # a long last command is not padded for
    return [f"{command.ljust(width)}  # {why}" for command, why in steps]


def next_steps(project: Path, bin_dir: Path = BIN) -> list[str]:
    """The first block to paste after the demo: a second run, then the MLflow UI (it blocks: last).

    Each line works when pasted into a new shell: the first activates the virtualenv (``kedro``
    and ``mlflow`` are installed there only), paths are absolute.
    """
    return _commented([
        *_setup(project, bin_dir),
        ("kedro run --params model_options.C=0.05", "a second run to compare with the first"),
        ("kedro mlflow ui", "blocks: the MLflow UI on http://127.0.0.1:5000 until Ctrl-C"),
    ])


def serve_steps(project: Path, model_uri: str, bin_dir: Path = BIN) -> list[str]:
    """The second block, for another shell: serve the pipeline model (it blocks: last)."""
    return _commented([
        *_setup(project, bin_dir),
        (f"MLFLOW_TRACKING_URI=sqlite:///mlflow.db mlflow models serve -m {model_uri} --env-manager local --port 5001",
         "blocks: predictions on http://127.0.0.1:5001/invocations until Ctrl-C"),
    ])


def main() -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "KEDRO_MLFLOW_"))}
    env["KEDRO_DISABLE_TELEMETRY"] = "true"
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"

    step(f"kedro new --starter=mlflow-iris into {DEMO.relative_to(REPO)}/")
    shutil.rmtree(DEMO, ignore_errors=True)
    DEMO.mkdir()
    # cookiecutter keeps its replay files in the scratch folder rather than in your home
    rc = DEMO / "cookiecutterrc.yml"
    rc.write_text(f"replay_dir: {DEMO / '.cookiecutter_replay'}\ncookiecutters_dir: {DEMO / '.cookiecutters'}\n")
    env["COOKIECUTTER_CONFIG"] = str(rc)
    config = DEMO / "answers.yml"
    config.write_text(
        f"project_name: {PROJECT_NAME}\nmlflow_tracking_uri: sqlite:///mlflow.db\noutput_dir: {DEMO}\n"
    )
    call(str(BIN / "kedro"), "new", "--starter=mlflow-iris", f"--config={config}", cwd=DEMO, env=env)

    missing = missing_requirements(PROJECT / "requirements.txt")
    if missing:
        step(f"pip install -r requirements.txt (missing: {', '.join(missing)})")
        call(sys.executable, "-m", "pip", "install", "-r", "requirements.txt", cwd=PROJECT, env=env)
    else:
        step("requirements.txt already satisfied: nothing to install")

    step("kedro run")
    call(str(BIN / "kedro"), "run", cwd=PROJECT, env=env)

    step("What MLflow holds")
    return summary(f"sqlite:///{(PROJECT / 'mlflow.db').as_posix()}")


if __name__ == "__main__":
    sys.exit(main())
