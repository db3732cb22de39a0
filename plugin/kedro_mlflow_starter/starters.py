"""The ``kedro.starters`` entry point: ``kedro new --starter=mlflow-iris``.

The template path is a folder inside the installed package (or the source checkout), so the
alias works offline. Kedro resolves a plugin starter's ``template_path`` with cookiecutter:
a local folder is used as it is (the ``checkout`` Kedro passes for aliases only applies to
git URLs) and must hold ``prompts.yml`` and ``cookiecutter.json``; ``directory`` stays unset
because the template root is that folder itself.
"""

from __future__ import annotations

from kedro.framework.cli.starters import KedroStarterSpec

from kedro_mlflow_starter.templates import starter_root

ALIAS = "mlflow-iris"

starters = [KedroStarterSpec(alias=ALIAS, template_path=str(starter_root()))]
