"""Ship the starter template inside the package (everything else is in pyproject.toml).

The wheel carries the repository's root ``cookiecutter.json``, ``prompts.yml`` and
``starter/`` as ``kedro_mlflow_starter/_starter/``, dotfiles such as ``.gitignore`` and
``.gitkeep`` included (package-data globs would skip them), so the ``mlflow-iris`` alias and
``kedro new --starter=<this repository>`` walk the same files. An editable install copies
nothing: ``kedro_mlflow_starter.templates.starter_root()`` then finds the checkout itself.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
TEMPLATE_FILES = ("cookiecutter.json", "prompts.yml")
TEMPLATE_DIRS = ("starter",)
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")


class BuildPyWithStarter(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "kedro_mlflow_starter" / "_starter"
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        for name in TEMPLATE_FILES:
            shutil.copy2(ROOT / name, target / name)
        for name in TEMPLATE_DIRS:
            shutil.copytree(ROOT / name, target / name, ignore=IGNORED)


setup(cmdclass={"build_py": BuildPyWithStarter})
