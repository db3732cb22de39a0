"""Helpers of the orchestrated-run tests: starter projects, task processes, the run read back.

``new_iris_project`` makes a project with ``kedro new --starter=mlflow-iris``;
``add_fanout_nodes`` widens its ``__default__`` pipeline with three scoring nodes that run
after ``train_model``, so its last wave has six independent nodes (the starter alone has
three). The scoring nodes obey three environment variables so a test acts at a known point:
``FANOUT_MARKER_DIR`` (write ``<node>.started`` when it starts), ``FANOUT_FAIL=<node>``
(raise) and ``FANOUT_SLOW=<node>`` (sleep two minutes, to be killed).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.project_factory import kedro_process_state, script_result, start_kedro_in_fork
from tests.starter_fixtures import KEDRO, PACKAGE, REPO_NAME, GeneratedProject, assert_ok, kedro_env, kedro_new, \
    run_summary, write_config

PROJECT_NAME = "Iris Tracking Demo"
FANOUT_NODES = ("score_1", "score_2", "score_3")

FANOUT_PIPELINE = '''"""Three independent scoring nodes after train_model (the orchestrated-run tests)."""

import os
import time
from pathlib import Path

from kedro.pipeline import Pipeline, node


def _scorer(name):
    def score(test_set, preprocessor, classifier, target, weight):
        marker = os.environ.get("FANOUT_MARKER_DIR")
        if marker:
            Path(marker, name + ".started").write_text(str(os.getpid()))
        if os.environ.get("FANOUT_FAIL") == name:
            raise RuntimeError(f"{name} failed on purpose")
        if os.environ.get("FANOUT_SLOW") == name:
            time.sleep(120)
        features = preprocessor.transform(test_set.drop(columns=[target]))
        return float(classifier.score(features, test_set[target])) * weight

    score.__name__ = name
    return score


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline([
        node(_scorer(name), ["test_set", "preprocessor", "classifier", "params:target", f"params:fanout.weight_{i}"],
             f"fanout_{name}", name=name)
        for i, name in enumerate(("score_1", "score_2", "score_3"), start=1)
    ])
'''


def new_iris_project(root: Path, home: Path, generated_tree: dict[str, bytes] | None = None) -> GeneratedProject:
    """``kedro new --starter=mlflow-iris`` into ``root`` (embedded SQLite store); given the
    session's ``generated_tree`` (the same command and answers), a copy of its files instead."""
    if generated_tree is not None:
        for relative, content in generated_tree.items():
            (root / REPO_NAME / relative).parent.mkdir(parents=True, exist_ok=True)
            (root / REPO_NAME / relative).write_bytes(content)
        return GeneratedProject(root / REPO_NAME, home)
    root.mkdir(parents=True, exist_ok=True)
    config = write_config(root / "answers.yml", project_name=PROJECT_NAME, mlflow_tracking_uri="sqlite:///mlflow.db",
                          output_dir=str(root))
    assert_ok(kedro_new("--starter=mlflow-iris", f"--config={config}", cwd=root, home=home), "kedro new")
    return GeneratedProject(root / REPO_NAME, home)


def add_fanout_nodes(project: GeneratedProject) -> None:
    src = project.path / "src" / PACKAGE
    (src / "pipelines" / "fanout.py").write_text(FANOUT_PIPELINE, encoding="utf-8")
    registry = src / "pipeline_registry.py"
    text = registry.read_text(encoding="utf-8")
    text = text.replace("import data_processing, inference, training", "import data_processing, fanout, inference, training")
    old = '"__default__": data_processing_pipeline + training_pipeline,'
    assert old in text
    text = text.replace(old, '"__default__": data_processing_pipeline + training_pipeline + fanout.create_pipeline(),')
    registry.write_text(text, encoding="utf-8")
    conf = project.path / "conf" / "base"
    (conf / "parameters_fanout.yml").write_text(
        yaml.safe_dump({"fanout": {"weight_1": 1.0, "weight_2": 0.5, "weight_3": 0.25}}), encoding="utf-8")
    with open(conf / "catalog.yml", "a", encoding="utf-8") as catalog:
        catalog.write("\n" + yaml.safe_dump(
            {f"fanout_{name}": {"type": "kedro_mlflow_starter.io.MlflowMetricDataset"} for name in FANOUT_NODES}))


def set_tracking_uri(project: GeneratedProject, uri: str, experiment: str | None = None) -> None:
    """Point the project at ``uri``; ``experiment``: log to that experiment, not the package's (a test
    sharing the session's server with a test that reads back its whole experiment)."""
    path = project.path / "conf" / "base" / "mlflow.yml"
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    config["server"]["mlflow_tracking_uri"] = uri
    if experiment is not None:
        config["tracking"]["experiment"]["name"] = experiment
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")


def waves(project: GeneratedProject, pipeline: str = "__default__") -> list[list[str]]:
    """The pipeline's nodes in topological waves (Kedro's own grouping), read in the test process."""
    from kedro.framework.project import pipelines
    from kedro.framework.startup import bootstrap_project

    with kedro_process_state(PACKAGE, project.path, kedro_env(project.home)):
        bootstrap_project(project.path)
        return [sorted(n.name for n in group) for group in pipelines[pipeline].grouped_nodes]


def open_run(project: GeneratedProject, *args: str) -> str:
    """``kedro mlflow run open`` (in the test process: the orchestrator's step, no state of its own)."""
    result = project.kedro_in_process("mlflow", "run", "open", *args)
    assert_ok(result, "kedro mlflow run open")
    run_id = result.stdout.strip().splitlines()[-1]
    lines = result.stderr.splitlines()
    said = lines[next(i for i, line in enumerate(lines) if line.startswith("Opened MLflow run")):][:4]
    # what to do next, at 80 columns: only the store's URI may be longer (a path is as long as it is)
    assert said[2:] == [f"Run every task with MLFLOW_RUN_ID={run_id}, then:",
                        f"  kedro mlflow run close --run-id {run_id}"], result.stderr
    assert all(len(line) <= 80 for line in (said[0], *said[2:])), said
    return run_id


def close_run(project: GeneratedProject, run_id: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``kedro mlflow run close`` (in the test process, as ``open_run``)."""
    result = project.kedro_in_process("mlflow", "run", "close", "--run-id", run_id, *args)
    assert_ok(result, "kedro mlflow run close")
    return result


def start_task(project: GeneratedProject, node: str, run_id: str, extra: dict[str, str] | None = None,
               log_dir: Path | None = None) -> subprocess.Popen[str]:
    """One orchestrator task: ``kedro run --nodes <node>`` with MLFLOW_RUN_ID set, in its own process."""
    env = kedro_env(project.home, {"MLFLOW_RUN_ID": run_id, **(extra or {})})
    log = open((log_dir or project.path) / f"task-{node}.log", "w", encoding="utf-8")  # noqa: SIM115
    process = subprocess.Popen([KEDRO, "run", "--nodes", node], cwd=project.path, env=env, stdout=log,
                               stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True)
    log.close()
    return process


def task_log(project: GeneratedProject, node: str, log_dir: Path | None = None) -> str:
    return ((log_dir or project.path) / f"task-{node}.log").read_text(encoding="utf-8")


def fan_out(project: GeneratedProject, run_id: str, plan: list[list[str]], log_dir: Path,
            extra: dict[str, str] | None = None) -> dict[str, int]:
    """Run every wave, its nodes at the same time, each task a process of its own forked from the
    test process (``start_kedro_in_fork``: no new interpreter's imports; the tasks signalled by a
    test use ``start_task``); the return code of every task."""
    env = kedro_env(project.home, {"MLFLOW_RUN_ID": run_id, **(extra or {})})
    codes: dict[str, int] = {}
    for wave in plan:
        running = {node: start_kedro_in_fork("run", "--nodes", node, cwd=project.path, env=env,
                                             log=log_dir / f"task-{node}.log") for node in wave}
        for node, process in running.items():
            codes[node] = process.wait(timeout=300).returncode
    return codes


def the_run(tracking_uri: str, run_id: str) -> dict[str, Any]:
    """The experiment's runs read back; asserts ``run_id`` is the only one and returns it."""
    runs = run_summary(tracking_uri, PACKAGE)["runs"]
    assert [r["id"] for r in runs] == [run_id], f"expected exactly one MLflow run {run_id}, got {runs}"
    return runs[0]


def predict_in_fresh_interpreter(tracking_uri: str, model_uri: str, csv: Path, env: dict[str, str],
                                 download_to: Path) -> list[str]:
    """The species the pipeline model predicts for ``csv``, loaded in a new Python process
    (downloaded into ``download_to``: MLflow would leave its own temp copy behind)."""
    download_to.mkdir(parents=True, exist_ok=True)
    predicted = script_result(
        "predict_with_model",
        {"tracking_uri": tracking_uri, "input": {"csv": str(csv)},
         "predictions": {"model": {"model_uri": model_uri, "dst_path": str(download_to)}}},
        what="loading the pipeline model in a fresh interpreter", cwd=csv.parent, env=env, timeout=300)
    return [str(v) for v in predicted["predictions"]["model"]["data"]["species"]]


def environ_without_mlflow() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "KEDRO_MLFLOW_"))}
