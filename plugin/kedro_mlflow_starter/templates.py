"""Where the starter template lives: ``_starter/`` inside an installed wheel, the repository root in a checkout."""

from __future__ import annotations

from pathlib import Path
from typing import Any

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_DIR_NAME = "{{ cookiecutter.repo_name }}"


def starter_root() -> Path:
    """The folder that ``kedro new --starter`` walks (holds prompts.yml and cookiecutter.json)."""
    packaged = PACKAGE_DIR / "_starter"
    if (packaged / "prompts.yml").is_file():
        return packaged
    checkout = PACKAGE_DIR.parent.parent
    if (checkout / "starter" / "cookiecutter.json").is_file():
        return checkout
    raise FileNotFoundError(
        f"The kedro-mlflow-starter template is missing from {PACKAGE_DIR}; reinstall the package."
    )


def mlflow_schema_template() -> Path:
    """The JSON Schema the first line of ``mlflow.yml`` points editors at (``conf/mlflow.schema.json``)."""
    return starter_root() / "starter" / PROJECT_DIR_NAME / "conf" / "mlflow.schema.json"


def render_mlflow_yml(python_package: str, tracking_uri: str | None = None) -> str:
    """The documented ``mlflow.yml`` as the starter ships it, for ``kedro mlflow init``."""
    from jinja2 import Environment, StrictUndefined  # only `kedro mlflow init` needs it

    context: dict[str, Any] = {
        "python_package": python_package,
        "mlflow_tracking_uri": tracking_uri or "null",
    }
    env = Environment(keep_trailing_newline=True, undefined=StrictUndefined)
    template = starter_root() / "starter" / PROJECT_DIR_NAME / "conf" / "base" / "mlflow.yml"
    return env.from_string(template.read_text(encoding="utf-8")).render(cookiecutter=context)
