"""MLflow model flavors (any module with ``save_model``/``load_model``) as the model datasets use
them: checked to exist when the catalog is created, imported on the first save or load."""

from __future__ import annotations

import importlib
import inspect
import warnings
from types import ModuleType
from typing import Any

from kedro.io.core import DatasetError

from kedro_mlflow_starter.io._common import module_exists

PYFUNC = "mlflow.pyfunc"
PYFUNC_WORKFLOWS = ("python_model", "loader_module")

# Arguments of ``log_model`` that describe the LoggedModel rather than its files; every
# other ``save_args`` entry goes to the flavor's ``save_model``.
LOG_ONLY_ARGS = frozenset(
    {"name", "artifact_path", "registered_model_name", "await_registration_for", "params", "tags",
     "model_type", "step", "model_id"}
)


def check_flavor(dataset: str, flavor: str, pyfunc_workflow: str | None, save_args: dict[str, Any]) -> None:
    """Fail early, naming the fix, on a flavor or workflow that cannot work."""
    if not isinstance(flavor, str) or not module_exists(flavor):
        raise DatasetError(
            f"{dataset}: unknown flavor {flavor!r}: no such module is installed. Set `flavor:` to "
            "an MLflow flavor module such as `mlflow.sklearn`, `mlflow.pyfunc` or `mlflow.xgboost` "
            "(any importable module with `save_model` and `load_model`), and install its library."
        )
    if flavor == PYFUNC:
        if pyfunc_workflow not in PYFUNC_WORKFLOWS:
            raise DatasetError(
                f"{dataset}: flavor `mlflow.pyfunc` needs `pyfunc_workflow:` set to `python_model` "
                f"(save an `mlflow.pyfunc.PythonModel` instance) or `loader_module` (save a path to "
                f"model data, read back by the module in `save_args.loader_module`); got "
                f"{pyfunc_workflow!r}."
            )
        if pyfunc_workflow == "loader_module" and not save_args.get("loader_module"):
            raise DatasetError(
                f"{dataset}: `pyfunc_workflow: loader_module` needs `save_args: {{loader_module: "
                "<module>}}`, the module whose `_load_pyfunc(path)` loads the saved data."
            )
    elif pyfunc_workflow is not None:
        raise DatasetError(
            f"{dataset}: `pyfunc_workflow` only applies to `flavor: mlflow.pyfunc`; remove it "
            f"for flavor {flavor!r}."
        )


def import_flavor(flavor: str) -> ModuleType:
    module = importlib.import_module(flavor)
    for function in ("save_model", "load_model"):
        if not callable(getattr(module, function, None)):
            raise DatasetError(
                f"Flavor module {flavor!r} has no `{function}` function, so it is not an MLflow "
                "flavor. Use a module such as `mlflow.sklearn` or `mlflow.pyfunc`."
            )
    return module


def model_kwargs(module: ModuleType, pyfunc_workflow: str | None, model: Any) -> dict[str, Any]:
    """The keyword that hands ``model`` to the flavor's ``save_model``."""
    if module.__name__ == PYFUNC:
        return {"python_model": model} if pyfunc_workflow == "python_model" else {"data_path": str(model)}
    first = next(iter(inspect.signature(module.save_model).parameters))
    return {first: model}


def default_pip_requirements(module: ModuleType) -> list[str]:
    """The flavor's own pinned requirements: given explicitly, they stop MLflow from inferring
    them (which loads the model in a subprocess and costs seconds per save)."""
    from kedro_mlflow_starter.models.requirements import pinned

    defaults = getattr(module, "get_default_pip_requirements", None)
    requirements: list[str] = []
    if callable(defaults):
        accepted = inspect.signature(defaults).parameters
        requirements = list(defaults(**{name: True for name in accepted if name.startswith("include_")}))
    if not any(req.split("==")[0] == "cloudpickle" for req in requirements):
        requirements.append(pinned("cloudpickle") or "cloudpickle")
    return requirements


def save_flavor_model(flavor: ModuleType, **kwargs: Any) -> None:
    """``flavor.save_model(**kwargs)`` without the warnings of skops' module scan (it reads every
    loaded module, and each deprecated alias Airflow loads warns)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"skops\.io\._utils")
        flavor.save_model(**kwargs)


def save_model_args(module: ModuleType, save_args: dict[str, Any]) -> dict[str, Any]:
    """``save_args`` meant for ``save_model``, with fast explicit requirements by default."""
    args = {key: value for key, value in save_args.items() if key not in LOG_ONLY_ARGS}
    if "pip_requirements" in args or "conda_env" in args:
        return args
    extra = args.get("extra_pip_requirements")
    if extra is None or isinstance(extra, (list, tuple)):
        args.pop("extra_pip_requirements", None)
        args["pip_requirements"] = default_pip_requirements(module) + list(extra or [])
    return args
