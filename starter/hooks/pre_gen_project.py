"""Refuse bad answers before cookiecutter writes a single project file.

`kedro new` applies the validators of prompts.yml to interactive answers only; with
`--config` (or a plain `cookiecutter` call) the answers arrive unchecked. This hook applies
the same validators (read from prompts.yml, the single source) plus the checks a regex cannot
express, prints every problem with what is allowed, and exits non-zero: cookiecutter then
removes the project folder it had just created, so no half-written project is left behind.

Cookiecutter runs this hook as a rendered copy, ``tmpXXXX.py`` in the temp folder, holding the
user's answers, and never deletes it. The copy deletes itself before doing anything else, so
it is gone on every exit path (success, refused answers, an exception).
"""

import json
import keyword
import os
import re
import sys
import tempfile
from pathlib import Path


def remove_rendered_copy(script: str) -> None:
    """Delete this script if it is cookiecutter's rendered copy in the temp folder.

    Python has read and compiled the whole file before the first line runs, so deleting it
    here is safe; the template source (starter/hooks/pre_gen_project.py) is never touched.
    """
    path = Path(script).resolve()
    if path.name != "pre_gen_project.py" and path.parent == Path(tempfile.gettempdir()).resolve():
        try:
            os.remove(path)
        except OSError:
            pass


if __name__ == "__main__":
    remove_rendered_copy(__file__)

import yaml  # noqa: E402  (after the clean-up: a missing yaml must not leave the copy behind)

ANSWERS = json.loads(r'''{{ {
    "project_name": cookiecutter.project_name,
    "repo_name": cookiecutter.repo_name,
    "python_package": cookiecutter.python_package,
    "mlflow_tracking_uri": cookiecutter.mlflow_tracking_uri,
} | tojson }}''')
TEMPLATE_ROOT = Path(r'''{{ cookiecutter._repo_dir }}''').parent

# Packages the generated project imports: a project package with one of these names would
# shadow it and break `kedro run`.
DEPENDENCIES = {
    "kedro", "kedro_datasets", "kedro_mlflow_starter", "mlflow", "sklearn", "pandas",
    "numpy", "matplotlib", "pytest", "yaml",
}
REPO_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def shadows(package: str) -> bool:
    return package in DEPENDENCIES or package in sys.stdlib_module_names


def prompt_errors(prompts: dict) -> list[str]:
    errors = []
    for name, prompt in prompts.items():
        value = ANSWERS.get(name)
        pattern = prompt.get("regex_validator")
        if value is None or not pattern or re.match(pattern, value):
            continue
        if name == "project_name" and shadows(ANSWERS["python_package"]):
            continue  # the python_package error below says exactly that, once
        allowed = " ".join(prompt.get("error_message", "").split())
        errors.append(f"{name} {value!r} is not allowed. {allowed}")
    return errors


def extra_errors() -> list[str]:
    errors = []
    uri = ANSWERS["mlflow_tracking_uri"]
    try:
        round_trip = yaml.safe_load(f"uri: {uri}")["uri"]
    except yaml.YAMLError:
        round_trip = None
    if round_trip != uri:
        errors.append(
            f"mlflow_tracking_uri {uri!r} is not allowed: it does not survive as text in "
            "conf/base/mlflow.yml. Use a URI or path without YAML syntax such as ': ', ' #' or a "
            "leading '&', '*', '!', '[' or '{'."
        )
    package = ANSWERS["python_package"]
    if not (package.isascii() and package.isidentifier()) or keyword.iskeyword(package):
        errors.append(
            f"python_package {package!r} is not allowed: it must be a valid Python module name "
            "(letters, digits and underscores, starting with a letter, not a keyword), "
            "e.g. iris_mlflow."
        )
    elif shadows(package):
        errors.append(
            f"python_package {package!r} is not allowed: it would shadow the {package!r} module "
            "the project imports. Choose another project name (or python_package)."
        )
    repo = ANSWERS["repo_name"]
    if not REPO_NAME.match(repo):
        errors.append(
            f"repo_name {repo!r} is not allowed: the project folder name must contain only "
            "letters, digits, '.', '_' and '-', starting with a letter or digit, e.g. iris-mlflow."
        )
    return errors


def main() -> int:
    prompts_file = TEMPLATE_ROOT / "prompts.yml"
    if not prompts_file.is_file():
        print(f"Cannot create the project: {prompts_file} is missing from the starter.", file=sys.stderr)
        return 1
    prompts = yaml.safe_load(prompts_file.read_text(encoding="utf-8")) or {}
    errors = prompt_errors(prompts) + extra_errors()
    if not errors:
        return 0
    print("Cannot create the project, nothing was written:", file=sys.stderr)
    for error in errors:
        print(f"  - {error}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
