"""What a user sees (issue 21): the starter's `kedro run` as a terminal shows it, what it records,
each mistake answered on one screen, `kedro mlflow ui` serving a page and stopping on Ctrl-C,
`kedro --help` in a project.

One project is generated with `kedro new --starter=mlflow-iris` and run once, at 80 columns
and with Kedro's default (rich) logging, as a user's terminal would show it. The mistakes are
made in Kedro environments of that project (`--env <mistake>`), so the base project stays good.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from tests.project_factory import free_port, kedro_process_state, script_result
from tests.starter_fixtures import REPO, GeneratedProject, assert_ok, kedro_env, kedro_new_in_process, write_config

PACKAGE = "what_a_user_sees"
PIPELINE_MODEL, ESTIMATOR = "iris_pipeline_model", "iris_sklearn_estimator"
TEST_METRICS = ("test.accuracy", "test.f1_macro")
COLUMNS = "80"


def terminal(extra: dict[str, str] | None = None) -> dict[str, str]:
    """A user's terminal: 80 columns, no PYTHONWARNINGS of the test session's own."""
    return {"COLUMNS": COLUMNS, "PYTHONWARNINGS": "", **(extra or {})}


@dataclass
class UserRun:
    project: GeneratedProject
    console: str  # stdout + stderr of the first `kedro run`, as the terminal shows it
    returncode: int

    def client(self):
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.project.tracking_uri)

    def runs(self):
        client = self.client()
        experiment = client.get_experiment_by_name(PACKAGE)
        return [] if experiment is None else client.search_runs([experiment.experiment_id])


@pytest.fixture(scope="module")
def user_run(tmp_path_factory: pytest.TempPathFactory) -> UserRun:
    out = tmp_path_factory.mktemp("user")
    home = tmp_path_factory.mktemp("user-home")
    config = write_config(out / "config.yml", project_name="What a user sees",
                          mlflow_tracking_uri="sqlite:///mlflow.db", output_dir=str(out))
    assert_ok(kedro_new_in_process("--starter=mlflow-iris", f"--config={config}", cwd=out, home=home), "kedro new")
    project = GeneratedProject(out / "what-a-user-sees", home)
    result = project.kedro("run", env=terminal())
    return UserRun(project, result.stdout + result.stderr, result.returncode)


@pytest.fixture(scope="module")
def first_run(user_run: UserRun):
    assert user_run.returncode == 0, user_run.console
    [run] = user_run.runs()
    return run


# -- records -----------------------------------------------------------------------------------


def test_each_test_metric_is_one_point_and_loads_back_as_saved(user_run, first_run, monkeypatch):
    """Linking the metrics to the test set added a second point to each, 1 ms later (issue 21)."""
    from kedro_mlflow_starter.io import MlflowMetricsHistoryDataset

    client = user_run.client()
    run_id = first_run.info.run_id
    for key in TEST_METRICS:
        points = [(m.step, m.value) for m in client.get_metric_history(run_id, key)]
        assert points == [(0, first_run.data.metrics[key])], (key, points)

    monkeypatch.setenv("MLFLOW_TRACKING_URI", user_run.project.tracking_uri)
    loaded = MlflowMetricsHistoryDataset(prefix="test", run_id=run_id).load()
    # what docs/datasets.md says: the MLflow keys, one point as {value, step}
    assert loaded == {key: {"value": first_run.data.metrics[key], "step": 0} for key in TEST_METRICS}

    models = {m.name: m for m in client.search_logged_models(
        [first_run.info.experiment_id], filter_string=f"source_run_id = '{run_id}'")}
    assert set(models) == {PIPELINE_MODEL, ESTIMATOR}
    for name, model in models.items():  # "Metrics (4)" on the pipeline model's page for two metrics
        assert sorted(m.key for m in model.metrics) == sorted(TEST_METRICS), (name, model.metrics)
    # The estimator, logged before the metrics, has them linked to the data they were computed on.
    assert {m.dataset_name for m in models[ESTIMATOR].metrics} == {"test_set"}


def test_the_run_name_carries_the_start_time_mlflow_records(first_run):
    """`default 16:22:57` started at 16:23:15: the name took a time from before the run opened."""
    started = datetime.fromtimestamp(first_run.info.start_time / 1000)
    assert first_run.info.run_name == f"default {started:%H:%M:%S}"


# -- the console of a starter run ----------------------------------------------------------------


def test_the_console_of_a_starter_run_is_kedro_s_log_lines_and_our_two_addresses(user_run, first_run):
    console = user_run.console
    lines = console.splitlines()
    started = next(i for i, line in enumerate(lines) if "started in" in line)
    # the plugin read the parameters before the run opened, without Kedro's load log lines
    assert not [line for line in lines[:started] if "Loading data from" in line], console
    # ... nor the artifacts it packs into the pipeline model once the pipeline has ended
    ended = next(i for i, line in enumerate(lines) if "Pipeline execution completed" in line)
    assert not [line for line in lines[ended:] if "Loading data from" in line], console
    # Every line is a log line (or its wrapped continuation), or one of our two addresses: no bare
    # prints from MLflow ("Successfully registered model ..." / "Created version ...").
    bare = [line for line in lines if line and not line.startswith(("[", " ", "Run:   http", "Model: models:/"))]
    assert not bare, f"lines outside the log format:\n{bare}\n\n{console}"
    # rich puts the source file column (`registration_prints.py:58`) inside a wrapped message: drop it
    flat = " ".join(word for word in console.split() if not re.fullmatch(r"[\w.]+\.py:\d+", word))
    assert f"MLflow: registered version 1 of model '{PACKAGE}' (a new registered model)." in flat, console
    assert "Traceback" not in console and "Warning" not in console, console
    assert lines[-2].startswith("Run:   http://127.0.0.1:5000/#/experiments/")
    assert lines[-1].startswith("Model: models:/m-")


# -- errors on one screen ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def not_mlflow() -> str:
    """A web server that is not MLflow: Python's http.server answering 404 for every MLflow path."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
                              cwd=Path(__file__).parent / "scripts", stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        import requests

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                requests.get(url, timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


ARTIFACT_ENTRY = {"artifact_path": "reports",
                  "dataset": {"type": "matplotlib.MatplotlibDataset",
                              "filepath": "data/08_reporting/confusion_matrix.png"}}
MISTAKES = {
    "type-typo": ("catalog.yml", {"metrics": {"type": "kedro_mlflow_starter.io.MlflowMetricsHistoryDatset"}},
                  "Error: Catalog entry 'metrics' in conf/*/catalog.yml: `type: kedro_mlflow_starter.io.Mlflow",
                  "did you mean `type: kedro_mlflow_starter.io.MlflowMetricsHistoryDataset`?"),
    "bare-type-typo": ("catalog.yml", {"confusion_matrix": {"type": "MlflowArtifactDatset", **ARTIFACT_ENTRY}},
                       "Error: Catalog entry 'confusion_matrix' in conf/*/catalog.yml: `type: MlflowArtifactDatset`",
                       "did you mean `type: kedro_mlflow_starter.io.MlflowArtifactDataset`?"),
    "argument-typo": ("catalog.yml", {"confusion_matrix": {
                          "type": "kedro_mlflow_starter.io.MlflowArtifactDataset",
                          "artifact_pth": "reports", "dataset": ARTIFACT_ENTRY["dataset"]}},
                      "Error: Catalog entry 'confusion_matrix' (MlflowArtifactDataset) is invalid: conf/*/catalog.y",
                      "unknown argument `artifact_pth:`; did you mean `artifact_path:`?"),
    "not-mlflow": ("mlflow.yml", {"server": {"mlflow_tracking_uri": "{not_mlflow}"}},
                   "Error: The tracking URI http://127.0.0.1:",
                   "answers HTTP, but it is not an MLflow tracking server"),
}


def _make_mistake(project: GeneratedProject, mistake: str, url: str) -> None:
    file, content, _, _ = MISTAKES[mistake]
    path = project.path / "conf" / mistake / file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(content).replace("'{not_mlflow}'", url), encoding="utf-8")


@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_each_mistake_is_answered_on_one_screen(user_run, first_run, not_mlflow, mistake):
    """Today: 250 to 321 lines of traceback, ending in Kedro's "pip install kedro-datasets" hint or
    MLflow's "API request ... failed with error code 404"."""
    _, _, first_line, fix = MISTAKES[mistake]
    _make_mistake(user_run.project, mistake, not_mlflow)
    runs_before = sorted(r.info.run_id for r in user_run.runs())

    result = user_run.project.kedro("run", "--env", mistake, env=terminal())

    console = result.stdout + result.stderr
    lines = console.splitlines()
    assert result.returncode != 0, console
    assert "Traceback" not in console and "│" not in console, console
    errors = [line for line in lines if line.startswith("Error: ")]
    assert errors == [lines[-1]], console  # one paragraph, at the end, after Kedro's start-up lines only
    assert lines[-1].startswith(first_line), lines[-1]
    assert fix in lines[-1], lines[-1]
    assert len(lines) <= 12 and len(lines[-1]) <= 8 * int(COLUMNS), console  # one 80x24 screen
    assert "Running node" not in console
    assert sorted(r.info.run_id for r in user_run.runs()) == runs_before, "no run for a refused start"


def test_the_traceback_is_there_when_asked_for(user_run, not_mlflow, tmp_path):
    """Our logger at DEBUG in the project's logging configuration shows the traceback too."""
    _make_mistake(user_run.project, "argument-typo", not_mlflow)
    logging_yml = tmp_path / "logging.yml"
    logging_yml.write_text(yaml.safe_dump({
        "version": 1, "disable_existing_loggers": False,
        "handlers": {"console": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout"}},
        "loggers": {"kedro_mlflow_starter": {"level": "DEBUG"}},
        "root": {"level": "INFO", "handlers": ["console"]},
    }), encoding="utf-8")

    result = user_run.project.kedro("run", "--env", "argument-typo",
                                    env=terminal({"KEDRO_LOGGING_CONFIG": str(logging_yml)}))

    console = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Traceback" in console and "catalog_checks.py" in console, console
    assert "CatalogEntryError" in console and "did you mean `artifact_path:`?" in console, console


# -- kedro mlflow ui, kedro --help --------------------------------------------------------------


def test_kedro_mlflow_ui_serves_a_page_quietly_and_ctrl_c_ends_it_in_one_line(user_run, first_run):
    import requests

    port = free_port()
    # A session of its own: Ctrl-C reaches the whole foreground process group, as a terminal sends it.
    ui = subprocess.Popen([str(Path(sys.executable).with_name("kedro")), "mlflow", "ui", "--no-browser",
                           "--port", str(port)], cwd=user_run.project.path, start_new_session=True,
                          env={**os.environ, **terminal()}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 150
        page = None
        while time.monotonic() < deadline and ui.poll() is None:
            try:
                page = requests.get(f"{base}/", timeout=5)
                break
            except requests.ConnectionError:
                time.sleep(0.2)
        assert page is not None and page.status_code == 200, ui.poll()
        runs = requests.post(f"{base}/ajax-api/2.0/mlflow/runs/search", timeout=30,
                             json={"experiment_ids": [first_run.info.experiment_id]}).json()
        assert first_run.info.run_id in [r["info"]["run_id"] for r in runs["runs"]]
        time.sleep(1)  # the server's lines about these requests, if any, are written by now
    finally:
        os.killpg(ui.pid, signal.SIGINT)
        console, _ = ui.communicate(timeout=60)

    assert ui.returncode == 0, console
    lines = [line for line in console.splitlines() if not line.startswith(("[", " "))]  # Kedro's own log lines
    assert lines == [
        f"Starting the MLflow UI for {user_run.project.tracking_uri} on port {port}...",
        "MLflow UI ready (Ctrl-C to stop):",
        f"{base}/#/experiments/{first_run.info.experiment_id}?workflowType=machine_learning",
        "MLflow UI stopped.",
    ], console
    for noise in ("Traceback", "CancelledError", '"GET ', "Registry store URI", "Security middleware", "Warning"):
        assert noise not in console, console


def test_kedro_help_in_a_project_has_no_empty_plugin_section(user_run):
    result = user_run.project.kedro_in_process("--help", env=terminal())

    assert result.returncode == 0, result.stderr
    help_text = result.stdout
    assert "from kedro-mlflow-starter" in help_text  # the project commands (kedro mlflow)
    assert "Global commands from kedro-mlflow-starter" not in help_text, help_text
    assert "global commands." not in help_text, help_text
    section = re.search(r"Project specific commands from kedro-mlflow-starter\nCommands:\n(.*?)\n\n", help_text, re.S)
    assert section and section[1].split()[0] == "mlflow", help_text


# -- docs/notebooks.md: its snippets run as written -------------------------------------------


def _python_blocks(page: str, heading: str) -> list[str]:
    text = (REPO / "docs" / page).read_text(encoding="utf-8")
    section = text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def _new_runs(user_run: UserRun, before: set[str]):
    return [r for r in user_run.runs() if r.info.run_id not in before]


def test_the_script_of_the_notebooks_page_logs_one_run_like_kedro_run(user_run, first_run, tmp_path, monkeypatch):
    """`python train.py` in the project folder; run in this process as ``python`` would run it
    (``__main__``, its own argv, a fresh project state: ``kedro_process_state``)."""
    import contextlib
    import io
    import runpy

    [block] = _python_blocks("notebooks.md", "In a script")
    script = tmp_path / "train.py"
    script.write_text(block, encoding="utf-8")
    before = {r.info.run_id for r in user_run.runs()}

    monkeypatch.setattr(sys, "argv", [str(script)])
    out, err = io.StringIO(), io.StringIO()
    with kedro_process_state(PACKAGE, user_run.project.path, kedro_env(user_run.project.home, terminal())), \
            contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        runpy.run_path(str(script), run_name="__main__")
    result = subprocess.CompletedProcess(["python", str(script)], 0, out.getvalue(), err.getvalue())

    assert result.returncode == 0, result.stdout + result.stderr
    [run] = _new_runs(user_run, before)
    assert run.info.status == "FINISHED" and run.info.run_name.startswith("training ")
    assert run.data.params["model_options.C"] == "0.05"
    assert run.data.tags["kedro.command"] == "kedro run --pipelines=training --params=model_options.C=0.05"
    assert set(TEST_METRICS) <= set(run.data.metrics)
    run_page = f"http://127.0.0.1:5000/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
    assert f"Run:   {run_page}" in result.stdout


def test_the_notebook_cell_of_the_notebooks_page_runs_and_reads_the_run_back(user_run, first_run):
    [cell] = _python_blocks("notebooks.md", "In a notebook")
    assert cell.startswith("%load_ext kedro.ipython\n")
    before = {r.info.run_id for r in user_run.runs()}

    notebook = script_result("notebook_cells", {"cells": [cell]}, cwd=user_run.project.path,
                             env=kedro_env(user_run.project.home, terminal()), what="the notebook cell")

    [outcome] = notebook["cells"]
    assert outcome["ok"], outcome["error"]
    [run] = _new_runs(user_run, before)
    assert run.info.status == "FINISHED" and run.info.run_name.startswith("training ")
    expected = {key: {"value": run.data.metrics[key], "step": 0} for key in TEST_METRICS}
    assert outcome["result"] == repr(expected)
