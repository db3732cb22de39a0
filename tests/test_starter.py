"""The starter end to end: `kedro new --starter=mlflow-iris`, then the user's commands in the project.

One project is generated and run once per session (tests/starter_fixtures.py); each test
checks one promise of the starter on it.
"""

from __future__ import annotations

import json
import re
import subprocess
import textwrap
from pathlib import Path

import yaml

from tests.project_factory import script_result
from tests.starter_fixtures import (
    INSTANCE_ROWS,
    PACKAGE,
    PROJECT_NAME,
    REPO,
    REPO_NAME,
    GeneratedProject,
    TrainedProject,
    assert_ok,
    dump,
    iris_frame,
    kedro_env,
    kedro_new_in_process,
    tree,
    write_config,
)

TEXT_SUFFIXES = {".py", ".yml", ".yaml", ".toml", ".txt", ".md", ".csv", ".json", ".j2", ".gitignore", ".gitkeep"}


def _git_snapshot(tmp: Path) -> str:
    """This repository's template files committed in a fresh local git repository."""
    import shutil

    repo = tmp / "starter-repo"
    repo.mkdir()
    for name in ("cookiecutter.json", "prompts.yml"):
        shutil.copy2(REPO / name, repo / name)
    shutil.copytree(REPO / "starter", repo / "starter", ignore=shutil.ignore_patterns("__pycache__"))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "init.defaultBranch=main"]
    for args in (["init", "-q"], ["add", "-A", "-f"], ["commit", "-q", "-m", "starter"]):
        subprocess.run([*git, *args], cwd=repo, check=True, capture_output=True)
    return f"git+file://{repo.as_posix()}"


# ----- kedro new ------------------------------------------------------------------------------


def test_alias_generates_the_documented_project(generated: GeneratedProject, generated_tree):
    expected = {
        ".gitignore", "README.md", "pyproject.toml", "requirements.txt",
        "conf/base/catalog.yml", "conf/base/mlflow.yml", "conf/base/parameters.yml",
        "conf/base/parameters_data_processing.yml", "conf/base/parameters_training.yml", "conf/base/sweeps.yml",
        "conf/local/.gitkeep",
        "data/01_raw/iris.csv", "data/05_model_input/instances.csv",
        f"src/{PACKAGE}/settings.py", f"src/{PACKAGE}/pipeline_registry.py",
        *(f"src/{PACKAGE}/pipelines/{name}/{module}.py"
          for name in ("data_processing", "training", "inference") for module in ("__init__", "nodes", "pipeline")),
        "tests/conftest.py", "tests/test_run.py",
    }
    assert expected <= set(generated_tree), sorted(expected - set(generated_tree))
    mlflow_yml = yaml.safe_load(generated_tree["conf/base/mlflow.yml"])
    assert mlflow_yml["server"]["mlflow_tracking_uri"] == "sqlite:///mlflow.db"
    assert mlflow_yml["tracking"]["experiment"]["name"] == PACKAGE
    pyproject = generated_tree["pyproject.toml"].decode()
    assert f'package_name = "{PACKAGE}"' in pyproject and f'project_name = "{PROJECT_NAME}"' in pyproject
    settings = generated_tree[f"src/{PACKAGE}/settings.py"].decode()
    assert "import" not in settings, "settings.py must not import the plugin: its hook registers itself"
    requirements = generated_tree["requirements.txt"].decode()
    for requirement in ("kedro~=", "kedro-datasets[", "kedro-mlflow-starter>=", "scikit-learn", "pandas", "matplotlib"):
        assert requirement in requirements


def test_repo_path_git_url_interactive_and_name_flag_give_the_same_project(
    tmp_path: Path, starter_home: Path, generated_tree
):
    made = {}
    config = write_config(tmp_path / "config.yml", project_name=PROJECT_NAME,
                          mlflow_tracking_uri="sqlite:///mlflow.db")
    ways = {
        "repository path, --config": (["--starter", str(REPO), "--config", str(config)], None),
        "git URL, --config": (["--starter", _git_snapshot(tmp_path), "--config", str(config)], None),
        "alias, interactive": (["--starter=mlflow-iris"], f"{PROJECT_NAME}\n\n"),
        "repository path, --name": (["--starter", str(REPO), "--name", PROJECT_NAME], "\n"),
    }
    for index, (way, (args, answers)) in enumerate(ways.items()):
        out = tmp_path / f"out{index}"
        out.mkdir()
        result = kedro_new_in_process(*args, cwd=out, home=starter_home, input=answers)
        assert_ok(result, f"kedro new ({way})")
        made[way] = tree(out / REPO_NAME)

    for way, files in made.items():
        assert files.keys() == generated_tree.keys(), (way, set(files) ^ set(generated_tree))
        different = [name for name in files if files[name] != generated_tree[name]]
        assert not different, (way, different)


def test_interactive_prompt_offers_the_embedded_store_as_default(tmp_path: Path, starter_home: Path):
    result = kedro_new_in_process("--starter=mlflow-iris", cwd=tmp_path, home=starter_home, input="Prompted Iris\n\n")

    assert_ok(result, "kedro new")
    assert "\nTracking Store\n" in result.stdout  # the title as written (issue 21: not "Mlflow Tracking Uri")
    assert "[sqlite:///mlflow.db]" in result.stdout
    created = yaml.safe_load((tmp_path / "prompted-iris/conf/base/mlflow.yml").read_text())
    assert created["server"]["mlflow_tracking_uri"] == "sqlite:///mlflow.db"
    assert created["tracking"]["experiment"]["name"] == "prompted_iris"


def test_generated_files_are_rendered_and_parse(generated_tree):
    import ast
    import tomllib

    for name, content in generated_tree.items():
        suffix = Path(name).suffix or Path(name).name
        assert suffix in TEXT_SUFFIXES | {".png"}, f"unexpected file {name}"
        text = content.decode("utf-8")
        if suffix == ".j2":  # kedro-airflow's DAG template: Jinja left for `kedro airflow create`
            assert "cookiecutter" not in text and "{{ pipeline_name }}" in text, name
            continue
        assert "{{" not in text and "{%" not in text and "cookiecutter" not in text, name
        if suffix in (".yml", ".yaml"):
            yaml.safe_load(text)
        elif suffix == ".toml":
            tomllib.loads(text)
        elif suffix == ".json":
            json.loads(text)
        elif suffix == ".py":
            ast.parse(text, filename=name)


# ----- kedro run ------------------------------------------------------------------------------


def test_kedro_run_logs_one_finished_run_with_params_metrics_and_reports(trained: TrainedProject):
    assert_ok(trained.run_result, "kedro run")
    runs = trained.summary["runs"]
    assert len(runs) == 1, dump(runs)
    run_ = runs[0]
    assert run_["status"] == "FINISHED"
    assert run_["params"]["target"] == "species"
    # flattened (mlflow.yml dict_params.flatten: true): one readable column per key
    assert {key: run_["params"][key] for key in ("model_options.C", "model_options.max_iter")} == {
        "model_options.C": "1.0", "model_options.max_iter": "500"}
    assert run_["params"]["split_options.test_size"] == "0.2"
    assert "model_options" not in run_["params"]
    node_times = {f"time.node.{n}" for n in ("split_data", "fit_preprocessor", "train_model", "evaluate_model",
                                               "report", "bundle_model")}
    timings = {key for key in run_["metrics"] if key.startswith("time.")}  # lineage (issue 14)
    assert set(run_["metrics"]) - timings == {"test.accuracy", "test.f1_macro"}
    assert timings == node_times | {"time.pipeline"}
    assert run_["metrics"]["test.accuracy"] >= 0.9
    assert {"reports/confusion_matrix.png", "reports/classification_report.txt"} <= set(run_["artifacts"])


def test_confusion_matrix_is_a_png_in_the_run(trained: TrainedProject, tmp_path: Path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=trained.project.tracking_uri)
    run_id = trained.summary["runs"][0]["id"]
    png = Path(client.download_artifacts(run_id, "reports/confusion_matrix.png", str(tmp_path)))
    report = Path(client.download_artifacts(run_id, "reports/classification_report.txt", str(tmp_path)))

    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 5_000
    for species in ("setosa", "versicolor", "virginica"):
        assert species in report.read_text()
    # the local copies the user can open stay where the catalog says
    assert (trained.project.path / "data/08_reporting/confusion_matrix.png").read_bytes() == png.read_bytes()


def test_run_logs_the_classifier_and_the_pipeline_model(trained: TrainedProject):
    run_id = trained.summary["runs"][0]["id"]
    in_run = {model["name"]: model for model in trained.models if model["run_id"] == run_id}

    assert set(in_run) == {"iris_pipeline_model", "iris_sklearn_estimator"}, dump(trained.models)
    assert "sklearn" in in_run["iris_sklearn_estimator"]["flavors"]
    assert "python_function" in in_run["iris_pipeline_model"]["flavors"]
    assert all("READY" in model["status"] for model in in_run.values())


def test_pipeline_model_predicts_instances_in_a_fresh_process_outside_the_project(
    trained: TrainedProject, tmp_path: Path
):
    run_id = trained.summary["runs"][0]["id"]
    models = {model["name"]: model["uri"] for model in trained.models if model["run_id"] == run_id}
    instances = tmp_path / "instances.csv"
    instances.write_bytes((trained.project.path / "data/05_model_input/instances.csv").read_bytes())
    env = kedro_env(trained.project.home, {"MLFLOW_TRACKING_URI": trained.project.tracking_uri})
    env.pop("PYTHONPATH", None)

    predicted = script_result(
        "predict_with_model",
        {"must_not_import": [PACKAGE], "input": {"csv": str(instances)},
         "predictions": {"pipeline": {"model_uri": models["iris_pipeline_model"]},
                         "sklearn": {"model_uri": models["iris_sklearn_estimator"], "flavor": "sklearn"}}},
        what="predicting with the logged models", cwd=tmp_path, env=env)

    assert predicted["importable"] == {PACKAGE: False}, "the project must not be importable here"
    pipeline = predicted["predictions"]["pipeline"]
    output = {"columns": pipeline["columns"], "species": pipeline["data"]["species"],
              "probability": pipeline["data"]["probability"], "sklearn": predicted["predictions"]["sklearn"]["values"]}
    expected = iris_frame().loc[list(INSTANCE_ROWS), "species"].tolist()
    assert output["columns"] == ["species", "probability"]
    assert output["species"] == expected
    assert output["sklearn"] == expected
    assert all(0 < p <= 1 for p in output["probability"])


def test_inference_pipeline_runs_after_training(trained: TrainedProject):
    import pandas as pd

    assert_ok(trained.inference_result, "kedro run --pipelines inference")
    predictions = pd.read_csv(trained.project.path / "data/07_model_output/predictions.csv")
    assert predictions["species"].tolist() == iris_frame().loc[list(INSTANCE_ROWS), "species"].tolist()


def test_training_pipeline_alone_logs_its_own_run_and_pipeline_model(trained: TrainedProject):
    assert_ok(trained.training_result, "kedro run --pipelines training")
    runs = {run_["id"]: run_ for run_ in trained.summary_after_training["runs"]}
    first = trained.summary["runs"][0]["id"]
    later = [run_ for run_id, run_ in runs.items() if run_id != first]
    assert all(run_["status"] == "FINISHED" for run_ in runs.values()), dump(runs)
    training_runs = [run_ for run_ in later if "test.accuracy" in run_["metrics"]]
    assert len(training_runs) == 1, dump(later)
    from tests.starter_fixtures import logged_models

    models = logged_models(trained.project.tracking_uri, PACKAGE)
    assert {m["name"] for m in models if m["run_id"] == training_runs[0]["id"]} == {
        "iris_pipeline_model", "iris_sklearn_estimator"}


def test_generated_project_tests_pass_right_after_generation(trained: TrainedProject, generated_tree):
    result = trained.pytest_result
    assert_ok(result, "pytest in the generated project")
    assert re.search(r"\b\d+ passed\b", result.stdout), result.stdout
    assert not re.search(r"\b(failed|errors?|warnings?)\b", result.stdout.splitlines()[-1]), result.stdout
    # the project's tests write no data and log nothing to MLflow
    assert trained.files_after_pytest == set(generated_tree)


def test_registry_lists_every_pipeline(generated: GeneratedProject):
    result = generated.kedro_in_process("registry", "list")

    assert_ok(result, "kedro registry list")
    listed = set(re.findall(r"^- (\S+)$", result.stdout, flags=re.M))
    assert {"__default__", "data_processing", "training", "inference"} <= listed, result.stdout


def test_run_tells_where_the_run_is_and_how_to_open_it(trained: TrainedProject):
    output = trained.run_result.stdout + trained.run_result.stderr
    assert trained.summary["runs"][0]["id"] in output
    assert "kedro mlflow ui" in output


# Third-party warnings the generated project cannot avoid: (category, source file, reason).
UNAVOIDABLE = [
    ("SADeprecationWarning", "mlflow/store/",
     "MLflow's SQLAlchemy store uses an API SQLAlchemy 2.1 deprecates (hidden by default)"),
    ("Pandas4Warning", "mlflow/models/utils.py",
     "MLflow's input-example code compares columns with a range, deprecated in pandas 3"),
]
PY_WARNING = re.compile(r"^(?P<path>\S.*?):(?P<line>\d+): (?P<category>\w*Warning): (?P<message>.*)$")
LOG_WARNING = re.compile(r"^(?:\S+ \S+ )?WARNING (?P<logger>[\w.]+):? (?P<message>.*)$")


def _warnings(output: str) -> list[dict[str, str]]:
    """Every warning a run printed: Python warnings and WARNING log records."""
    found = []
    for line in output.splitlines():
        if match := PY_WARNING.match(line):
            found.append({"source": match["path"], **match.groupdict(), "line": line})
        elif match := LOG_WARNING.match(line):
            found.append({"source": match["logger"], "category": "log", **match.groupdict(), "line": line})
    return found


def _ours(warning: dict[str, str]) -> bool:
    source = warning["source"].replace("\\", "/")
    return ("kedro_mlflow_starter" in source or f"/src/{PACKAGE}/" in source
            or source.split(".")[0] in ("kedro_mlflow_starter", PACKAGE))


def test_run_prints_no_warning_from_our_code_and_no_avoidable_one(trained: TrainedProject):
    """Counted with every warning shown (PYTHONWARNINGS=default), DeprecationWarnings included."""
    found = _warnings(trained.run_result.stdout + "\n" + trained.run_result.stderr)
    ours = [w["line"] for w in found if _ours(w)]
    unexpected = [
        w["line"] for w in found
        if not _ours(w) and not any(w["category"] == category and source in w["source"].replace("\\", "/")
                                    for category, source, _ in UNAVOIDABLE)
    ]

    assert ours == [], f"{len(ours)} warning(s) from kedro-mlflow-starter or the project:\n" + "\n".join(ours)
    assert unexpected == [], f"{len(unexpected)} avoidable third-party warning(s):\n" + "\n".join(unexpected)
    assert len(found) <= len(UNAVOIDABLE), "\n".join(w["line"] for w in found)


def test_warning_parser_reads_both_forms():
    output = textwrap.dedent("""
        /x/kedro_mlflow_starter/config/loader.py:82: UserWarning: register_resolver() is deprecated.
        2026/11/29 02:14:04 WARNING mlflow.pyfunc: Passing a Python object as `python_model` ...
        WARNING kedro.framework.cli.utils: Failed to load commands
        INFO kedro.runner: Completed 1 out of 6 tasks
    """)
    found = _warnings(output)
    assert [w["category"] for w in found] == ["UserWarning", "log", "log"]
    assert [_ours(w) for w in found] == [True, False, False]
