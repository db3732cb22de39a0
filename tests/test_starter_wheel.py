"""The wheel ships the starter: template files (dotfiles included) inside the package, and the
`mlflow-iris` alias of the installed wheel generates the same project as the checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.project_factory import script_result
from tests.starter_fixtures import (
    PROJECT_NAME,
    REPO,
    REPO_NAME,
    STARTER,
    assert_ok,
    kedro_new,
    tree,
    write_config,
)

PACKAGED = "kedro_mlflow_starter/_starter"
SOURCES = ("pyproject.toml", "setup.py", "MANIFEST.in", "cookiecutter.json", "prompts.yml")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel `pip wheel` builds from a copy of this repository's sources."""
    source = tmp_path_factory.mktemp("source")
    for name in SOURCES:
        shutil.copy2(REPO / name, source / name)
    readme = REPO / "README.md"
    (source / "README.md").write_text(readme.read_text() if readme.exists() else "kedro-mlflow-starter\n")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".pytest_cache")
    shutil.copytree(REPO / "plugin", source / "plugin", ignore=ignore)
    shutil.copytree(REPO / "starter", source / "starter", ignore=ignore)
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(out), str(source)],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (built,) = out.glob("kedro_mlflow_starter-*.whl")
    return built


def _template_files() -> set[str]:
    files = {f"{PACKAGED}/{name}" for name in ("cookiecutter.json", "prompts.yml")}
    for path in STARTER.rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts:
            files.add(f"{PACKAGED}/starter/{path.relative_to(STARTER).as_posix()}")
    return files


def test_wheel_holds_every_template_file_dotfiles_included(wheel: Path):
    names = set(zipfile.ZipFile(wheel).namelist())

    expected = _template_files()
    assert expected <= names, sorted(expected - names)
    project = f"{PACKAGED}/starter/{{{{ cookiecutter.repo_name }}}}"
    for dotfile in (".gitignore", "conf/local/.gitkeep", "data/08_reporting/.gitkeep"):
        assert f"{project}/{dotfile}" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_wheel_declares_the_starter_entry_point(wheel: Path):
    archive = zipfile.ZipFile(wheel)
    (entry_points,) = [n for n in archive.namelist() if n.endswith(".dist-info/entry_points.txt")]
    text = archive.read(entry_points).decode()

    assert "[kedro.starters]" in text
    assert "kedro_mlflow_starter.starters:starters" in text


def test_installed_wheel_alias_generates_the_same_project(wheel: Path, tmp_path: Path, starter_home: Path,
                                                          generated_tree):
    target = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--quiet", "--target", str(target), str(wheel)],
        capture_output=True, text=True, timeout=300,
    )
    assert install.returncode == 0, install.stderr
    out = tmp_path / "out"
    out.mkdir()
    config = write_config(tmp_path / "config.yml", project_name=PROJECT_NAME,
                          mlflow_tracking_uri="sqlite:///mlflow.db", output_dir=str(out))
    # The wheel's copy comes first on sys.path: its package and its entry points win.
    env = {"PYTHONPATH": str(target)}

    listed = script_result("starter_template_paths", {}, env={**os.environ, **env}, cwd=tmp_path)
    assert Path(listed["template_paths"][0]) == target / PACKAGED
    result = kedro_new("--starter=mlflow-iris", f"--config={config}", cwd=out, home=starter_home, env=env)

    assert_ok(result, "kedro new from the installed wheel")
    files = tree(out / REPO_NAME)
    assert files == generated_tree
