"""The starter template itself: baked with pytest-cookies, its prompts, validators and hook.

Fast tests: no `kedro run`. Bad answers are driven through `kedro new` (interactive via
stdin, and `--config`) as a user would give them.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.starter_fixtures import (
    REPO,
    STARTER,
    TEMPLATE,
    kedro_new,
    write_config,
    write_template_data,
)

PROMPTS = yaml.safe_load((REPO / "prompts.yml").read_text())
# What `kedro new` passes to cookiecutter as extra_context for a starter (kedro 1.7).
KEDRO_CONTEXT = {
    "project_name": "Baked Iris",
    "mlflow_tracking_uri": "sqlite:///mlflow.db",
    "kedro_version": "1.7.0",
    "tools": "['None']",
    "example_pipeline": "False",
}


def _bake(cookies, **answers):
    return cookies.bake(template=str(STARTER), extra_context={**KEDRO_CONTEXT, **answers})


# ----- plumbing -------------------------------------------------------------------------------


def test_root_cookiecutter_points_at_the_starter_and_shares_its_defaults():
    root = json.loads((REPO / "cookiecutter.json").read_text())
    starter = json.loads((STARTER / "cookiecutter.json").read_text())

    (nested,) = root["templates"].values()
    assert (REPO / nested["path"]).resolve() == STARTER
    # Kedro shows the root file's values as the prompts' defaults; cookiecutter uses the starter's.
    for key in PROMPTS:
        assert root[key] == starter[key], key
    assert starter["mlflow_tracking_uri"] == "sqlite:///mlflow.db"


def test_starter_declares_every_variable_kedro_passes():
    starter = json.loads((STARTER / "cookiecutter.json").read_text())
    # cookiecutter drops extra_context keys that cookiecutter.json does not declare
    assert set(KEDRO_CONTEXT) | {"repo_name", "python_package"} <= set(starter)
    assert set(PROMPTS) <= set(starter)
    assert "project_name" in PROMPTS, "kedro new fails on a prompts.yml without project_name"


def test_requirements_pin_the_plugin_version_being_shipped():
    import kedro_mlflow_starter

    starter = json.loads((STARTER / "cookiecutter.json").read_text())
    assert starter["_kedro_mlflow_starter_version"] == kedro_mlflow_starter.__version__


def test_shipped_data_is_the_iris_data_bundled_with_scikit_learn(tmp_path: Path):
    for folder in ("data/01_raw", "data/05_model_input"):
        (tmp_path / folder).mkdir(parents=True)
    write_template_data(tmp_path)

    for name in ("data/01_raw/iris.csv", "data/05_model_input/instances.csv"):
        assert (TEMPLATE / name).read_bytes() == (tmp_path / name).read_bytes(), name
    header, *rows = (TEMPLATE / "data/01_raw/iris.csv").read_text().splitlines()
    assert header == "sepal_length,sepal_width,petal_length,petal_width,species" and len(rows) == 150
    assert "species" not in (TEMPLATE / "data/05_model_input/instances.csv").read_text()


def test_kedro_starter_list_shows_the_alias(tmp_path: Path, starter_home: Path):
    from tests.starter_fixtures import KEDRO, kedro_env, run

    result = run([KEDRO, "starter", "list"], cwd=tmp_path, env=kedro_env(starter_home))

    assert result.returncode == 0, result.stderr
    listed = yaml.safe_load(result.stdout.split("Starters from kedro_mlflow_starter", 1)[1].split("Starters from", 1)[0])
    assert Path(listed["mlflow-iris"]["template_path"]).resolve() == REPO


# ----- baking ---------------------------------------------------------------------------------


def test_baked_project_is_fully_rendered_and_parses(cookies):
    result = _bake(cookies)

    assert result.exit_code == 0, result.exception
    root = Path(result.project_path)
    assert root.name == "baked-iris"
    files = [p for p in root.rglob("*") if p.is_file()]
    assert any(p.name == ".gitignore" for p in files) and any(p.name == ".gitkeep" for p in files)
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert "cookiecutter." not in text, path
        if path.suffix == ".j2":  # kedro-airflow's DAG template: Jinja left for `kedro airflow create`
            assert "{{ pipeline_name }}" in text, path
            continue
        assert "{{" not in text and "{%" not in text, path
        if path.suffix == ".yml":
            yaml.safe_load(text)
        elif path.suffix == ".toml":
            tomllib.loads(text)
        elif path.suffix == ".py":
            ast.parse(text, filename=str(path))
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    assert pyproject["tool"]["kedro"]["package_name"] == "baked_iris"
    assert pyproject["project"]["scripts"] == {"baked-iris": "baked_iris.__main__:main"}
    assert (root / "src/baked_iris/pipelines/training/nodes.py").is_file()
    assert "kedro~=1.7.0" in (root / "requirements.txt").read_text()


@pytest.mark.parametrize("uri", ["http://mlflow.example.com:5000", "databricks", "/srv/mlruns", "sqlite:////tmp/x.db"])
def test_chosen_tracking_uri_lands_in_mlflow_yml(cookies, uri):
    result = _bake(cookies, mlflow_tracking_uri=uri)

    assert result.exit_code == 0, result.exception
    mlflow_yml = yaml.safe_load((Path(result.project_path) / "conf/base/mlflow.yml").read_text())
    assert mlflow_yml["server"]["mlflow_tracking_uri"] == uri
    assert mlflow_yml["tracking"]["experiment"]["name"] == "baked_iris"


def test_gitignore_keeps_the_shipped_data_and_ignores_local_state(cookies):
    root = Path(_bake(cookies).project_path)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    ignored = ["mlflow.db", "mlartifacts/1/x.png", "mlruns/0/meta.yaml", "conf/local/mlflow.yml",
               "conf/local/credentials.yml", "data/06_models/classifier.pkl", "data/05_model_input/train_set.csv"]
    kept = ["data/01_raw/iris.csv", "data/05_model_input/instances.csv", "conf/local/.gitkeep",
            "conf/base/mlflow.yml", "data/08_reporting/.gitkeep"]

    check = subprocess.run(["git", "check-ignore", "--no-index", *ignored, *kept], cwd=root,
                           capture_output=True, text=True)
    assert set(check.stdout.split()) == set(ignored)


# ----- validators -----------------------------------------------------------------------------


@pytest.mark.parametrize("uri", [
    "sqlite:///mlflow.db", "sqlite:////abs/path/mlflow.db", "http://localhost:5000", "https://mlflow.example.com",
    "https://mlflow.example.com/team/a", "databricks", "databricks://my-profile", "mlruns", "./mlruns",
    "/srv/mlruns", "file:///srv/mlruns", "C:\\mlruns",
])
def test_tracking_uri_validator_accepts(uri):
    assert re.match(PROMPTS["mlflow_tracking_uri"]["regex_validator"], uri)


@pytest.mark.parametrize("uri", [
    "ftp://x", "s3://bucket/mlruns", "postgresql://u@h/db", "sqlite://mlflow.db", "http://", "http://host:port",
    "null", "None", "true", " mlruns", "runs #1", "http://a b",
])
def test_tracking_uri_validator_refuses(uri):
    assert not re.match(PROMPTS["mlflow_tracking_uri"]["regex_validator"], uri)


@pytest.mark.parametrize(("name", "ok"), [
    ("Iris MLflow", True), ("my-project_2", True), ("ab", True),
    ("1 bad!", False), ("1 bad", False), ("a", False), ("bad!", False), ("_hidden", False), ("é iris", False),
])
def test_project_name_validator(name, ok):
    assert bool(re.match(PROMPTS["project_name"]["regex_validator"], name)) is ok


@pytest.mark.parametrize(("answers", "named", "allowed"), [
    ({"project_name": "1 bad"}, "'1 bad'", "start with a letter"),
    ({"mlflow_tracking_uri": "ftp://x"}, "'ftp://x'", "sqlite:///<file>.db"),
    ({"mlflow_tracking_uri": "null"}, "'null'", "http(s)://"),
    ({"mlflow_tracking_uri": "*anchor"}, "'*anchor'", "YAML syntax"),
    ({"python_package": "mlflow"}, "'mlflow'", "would shadow"),
    ({"python_package": "1pkg"}, "'1pkg'", "valid Python module name"),
    ({"repo_name": "bad name"}, "'bad name'", "letters, digits"),
])
def test_pre_gen_hook_refuses_bad_answers_and_writes_nothing(tmp_path: Path, capfd, answers, named, allowed):
    from cookiecutter.exceptions import FailedHookException
    from cookiecutter.main import cookiecutter

    config = tmp_path / "cookiecutterrc.yml"
    config.write_text(yaml.safe_dump({"replay_dir": str(tmp_path / "replay"), "cookiecutters_dir": str(tmp_path / "cc")}))
    out = tmp_path / "out"
    out.mkdir()

    with pytest.raises(FailedHookException):
        cookiecutter(str(STARTER), no_input=True, extra_context={**KEDRO_CONTEXT, **answers},
                     output_dir=str(out), config_file=str(config))

    err = capfd.readouterr().err
    assert named in err and allowed in err, err
    assert "nothing was written" in err
    assert list(out.iterdir()) == []


# ----- bad answers through `kedro new` ---------------------------------------------------------


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != "config.yml")


@pytest.mark.parametrize(("answers", "named", "allowed"), [
    ("1 bad!\n", "'1 bad!' is an invalid value for project name", "must start with a letter"),
    ("1 bad\n", "'1 bad' is an invalid value for project name", "must start with a letter"),
    ("Good Iris\nftp://x\n", "'ftp://x' is an invalid value for tracking store", "sqlite:///<file>.db"),
    # issue 21: a name whose package would shadow an import is refused at its own prompt too
    ("mlflow\n\n", "'mlflow' is an invalid value for project name", "would shadow"),
])
def test_interactive_bad_answers_are_refused(tmp_path: Path, starter_home: Path, answers, named, allowed):
    result = kedro_new("--starter=mlflow-iris", cwd=tmp_path, home=starter_home, input=answers, env={"COLUMNS": "80"})

    assert result.returncode != 0
    assert named in result.stderr and allowed in result.stderr, result.stderr
    assert _leftovers(tmp_path) == []
    # One screen: the refusal right after the prompt, no cookiecutter ERROR log or traceback after it.
    output = result.stdout + result.stderr
    for noise in ("ERROR", "Traceback", "NoneType: None", "Failed to generate"):
        assert noise not in output, output
    refusal = result.stderr[result.stderr.index(named):].strip().splitlines()
    assert len(refusal) <= 7, refusal


def _shadowing_names() -> set[str]:
    """The names the project_name validator must refuse: what the project imports, and the standard library."""
    import sys

    hook = (STARTER / "hooks" / "pre_gen_project.py").read_text()
    dependencies = ast.literal_eval(re.search(r"DEPENDENCIES = (\{.*?\})", hook, re.S)[1])
    return {n.lower() for n in dependencies | set(sys.stdlib_module_names) if not n.startswith("_") and n.isidentifier()}


def test_the_project_name_validator_refuses_every_name_the_hook_would_refuse():
    """Issue 21: kedro new refuses 'mlflow' at the prompt, not after every answer and a hook failure."""
    pattern = PROMPTS["project_name"]["regex_validator"]
    regenerate = "|".join(n.replace("_", "[ _-]") for n in sorted(_shadowing_names()))
    let_through = sorted(n for n in _shadowing_names() if re.match(pattern, n))
    assert not let_through, f"{let_through} pass the prompt; the look-ahead should be (?i:{regenerate})"
    for name in ("MLflow", "Kedro Datasets", "kedro-mlflow-starter", "mlflow ", "Random"):
        assert not re.match(pattern, name), name
    for name in ("Iris MLflow", "mlflow demo", "Testing", "pandas2"):
        assert re.match(pattern, name), name


def test_prompt_titles_read_as_written():
    """Kedro prints each prompt's title through str.title(): "MLflow Tracking URI" read "Mlflow Tracking Uri"."""
    for name, prompt in PROMPTS.items():
        assert prompt["title"].strip().title() == prompt["title"].strip(), (name, prompt["title"])


@pytest.mark.parametrize(("answers", "named", "allowed"), [
    # Kedro checks the project name itself in --config mode, with its own (looser) rule ...
    ({"project_name": "1 bad!"}, "'1 bad!' is an invalid value for project name", "alphanumeric"),
    # ... which lets this one through to the starter's pre-generation hook.
    ({"project_name": "1 bad"}, "project_name '1 bad' is not allowed", "start with a letter"),
    ({"mlflow_tracking_uri": "ftp://x"}, "mlflow_tracking_uri 'ftp://x' is not allowed", "sqlite:///<file>.db"),
    ({"project_name": "Mlflow"}, "python_package 'mlflow' is not allowed", "would shadow"),
])
def test_config_bad_answers_are_refused_by_the_hook(tmp_path: Path, starter_home: Path, answers, named, allowed):
    config = write_config(tmp_path / "config.yml", **{
        "project_name": "Good Iris", "mlflow_tracking_uri": "sqlite:///mlflow.db", "output_dir": str(tmp_path),
        **answers,
    })

    result = kedro_new("--starter=mlflow-iris", f"--config={config}", cwd=tmp_path, home=starter_home)

    assert result.returncode != 0
    assert named in result.stderr and allowed in result.stderr, result.stderr
    assert _leftovers(tmp_path) == []


def test_config_without_the_tracking_uri_is_refused(tmp_path: Path, starter_home: Path):
    """Kedro requires every prompts.yml key in a --config file. Its own message for a missing
    key is lost (kedro 1.7 prints "NoneType: None"), which is why the README says so."""
    config = write_config(tmp_path / "config.yml", project_name="Good Iris")

    result = kedro_new("--starter=mlflow-iris", f"--config={config}", cwd=tmp_path, home=starter_home)

    assert result.returncode != 0
    assert _leftovers(tmp_path) == []


# ----- make demo ------------------------------------------------------------------------------


def _demo_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("starter_demo", REPO / "scripts/demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_demo_installs_nothing_when_the_test_environment_has_the_requirements(cookies):
    """`make demo` runs offline after `make test`: the test extra covers the project's requirements."""
    project = Path(_bake(cookies).project_path)

    assert _demo_module().missing_requirements(project / "requirements.txt") == []


def test_demo_lists_what_is_missing(tmp_path: Path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("kedro>=1.0\nkedro<0.1\nno-such-package-for-the-demo-test\n# a comment\n\n")

    assert _demo_module().missing_requirements(requirements) == ["kedro<0.1", "no-such-package-for-the-demo-test"]
