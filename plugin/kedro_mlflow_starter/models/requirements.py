"""A pipeline model's pinned pip requirements, from the modules its nodes, datasets and artifacts touch (in
milliseconds, where MLflow's inference loads the model in a subprocess), and the code shipped with it
(the project package and ``kedro_mlflow_starter``, as MLflow ``code_paths``, never requirements)."""

from __future__ import annotations

import importlib.metadata as metadata
import importlib.util
import pickle
import shutil
import sys
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from types import FunctionType, ModuleType
from typing import Any

from packaging.utils import canonicalize_name

ALWAYS = ("kedro", "mlflow", "cloudpickle", "pandas")
PLUGIN_PACKAGE = "kedro_mlflow_starter"
_NOT_REQUIREMENTS = {"__main__", "builtins", PLUGIN_PACKAGE}
# Cython's shared runtime ("_cython_3_2_9") on compiled extensions' functions: no distribution provides it
_NOT_REQUIREMENT_PREFIXES = ("_cython_",)


def _top(module_name: str | None) -> str | None:
    return module_name.split(".", 1)[0] if module_name else None


def module_imports(module: ModuleType) -> set[str]:
    """Top-level modules that ``module`` imported (its global modules, classes and functions)."""
    found = set()
    for value in list(vars(module).values()):
        if isinstance(value, ModuleType):
            found.add(_top(value.__name__))
        elif isinstance(value, (type, FunctionType)) or callable(value):
            found.add(_top(getattr(value, "__module__", None)))
    found.discard(None)
    return found  # type: ignore[return-value]


class _NullWriter:
    def write(self, data: Any) -> int:
        return len(data)


class _ModuleCollector(pickle.Pickler):
    """Pickles into nothing, recording the module of every class and function it meets."""

    def __init__(self) -> None:
        super().__init__(_NullWriter(), protocol=5, buffer_callback=lambda _buffer: None)
        self.modules: set[str] = set()

    def reducer_override(self, obj: Any) -> Any:
        target = obj if isinstance(obj, (type, FunctionType)) else type(obj)
        top = _top(getattr(target, "__module__", None))
        if top:
            self.modules.add(top)
        return NotImplemented


def object_modules(obj: Any) -> set[str]:
    """Top-level modules whose classes or functions ``obj`` is made of."""
    collector = _ModuleCollector()
    try:
        collector.dump(obj)
    except Exception:  # noqa: BLE001 - unpicklable with plain pickle (lambdas...): keep what was seen
        collector.modules.add(_top(type(obj).__module__) or "builtins")
    return collector.modules


@lru_cache(maxsize=1)
def _distributions() -> dict[str, list[str]]:
    return metadata.packages_distributions()


# Import names that differ from their distribution's name
_DISTRIBUTION_OF = {"sklearn": "scikit-learn", "yaml": "PyYAML", "PIL": "Pillow", "skimage": "scikit-image",
                    "dateutil": "python-dateutil", "attr": "attrs", "bs4": "beautifulsoup4", "cv2": "opencv-python"}


@lru_cache(maxsize=None)
def _named_distribution(module: str) -> str | None:
    """The distribution named like ``module`` (or its alias): microseconds, where ``packages_distributions()``
    reads the file list of every installed distribution (0.6 s in a data-science venv)."""
    for candidate in (module, _DISTRIBUTION_OF.get(module)):
        if not candidate:
            continue
        try:
            dist = metadata.distribution(candidate)
        except metadata.PackageNotFoundError:
            continue
        top_level = (dist.read_text("top_level.txt") or "").split()
        if not top_level or module in top_level:
            return dist.metadata["Name"]
    return None


def distributions_for(module: str) -> list[str]:
    """The installed distributions providing top-level ``module`` (empty for stdlib/unknown)."""
    if module in sys.stdlib_module_names or module in _NOT_REQUIREMENTS or module.startswith(_NOT_REQUIREMENT_PREFIXES):
        return []
    named = _named_distribution(module)
    if named:
        return [named]
    dists = list(dict.fromkeys(_distributions().get(module, [])))
    exact = [d for d in dists if canonicalize_name(d) == canonicalize_name(module)]
    return exact or dists


def pinned(distribution: str) -> str | None:
    try:
        return f"{distribution}=={metadata.version(distribution)}"
    except metadata.PackageNotFoundError:
        return None


def requirements(modules: Iterable[str], exclude: Iterable[str] = ()) -> list[str]:
    """Pinned requirements for ``ALWAYS`` plus the distributions providing ``modules``."""
    excluded = set(exclude)
    dists = list(ALWAYS)
    for module in sorted(set(modules) - excluded):
        dists += distributions_for(module)
    # a Kedro project's distribution is named after its package (no half-second scan of every distribution)
    excluded_dists = {canonicalize_name(d) for m in excluded if (d := _named_distribution(m))}
    result, seen = [], set()
    for dist in dists:
        key = canonicalize_name(dist)
        if key in seen or (key in excluded_dists and dist not in ALWAYS):
            continue
        seen.add(key)
        requirement = pinned(dist)
        if requirement:
            result.append(requirement)
    return result


def _is_stdlib_or_installed(module: ModuleType) -> bool:
    name = _top(module.__name__) or ""
    if name in sys.stdlib_module_names or name in _NOT_REQUIREMENTS:
        return True
    location = getattr(module, "__file__", None) or ""
    return "site-packages" in location or "dist-packages" in location or bool(_distributions().get(name))


def project_code_paths(functions: Iterable[Any]) -> list[str]:
    """Source folders (or files) of the project package and of any other top-level module of the node
    ``functions`` that no installed distribution provides."""
    from kedro.framework.project import PACKAGE_NAME  # set once the project is configured: read it now

    names = [PACKAGE_NAME] if PACKAGE_NAME else []
    for func in functions:
        top = _top(getattr(func, "__module__", None))
        module = sys.modules.get(top or "")
        if top and top not in names and module is not None and not _is_stdlib_or_installed(module):
            names.append(top)
    paths = []
    for name in names:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin in (None, "built-in", "frozen"):
            continue
        if spec.submodule_search_locations:
            paths.append(str(Path(next(iter(spec.submodule_search_locations)))))
        else:
            paths.append(str(Path(spec.origin)))
    return paths


def plugin_code(destination: Path) -> str:
    """A copy of the whole package's ``.py`` files under ``destination``, for ``code_paths`` (a shipped copy
    may come first on ``sys.path`` next to an installed plugin: it must not hide any module)."""
    source = Path(next(iter(importlib.util.find_spec(PLUGIN_PACKAGE).submodule_search_locations)))

    def ignored(folder: str, names: list[str]) -> set[str]:
        here = Path(folder)
        return {name for name in names if not ((here / name).is_dir() and (here / name / "__init__.py").is_file())
                and not (name.endswith(".py") and (here / name).is_file())}

    target = destination / PLUGIN_PACKAGE
    shutil.copytree(source, target, ignore=ignored)
    return str(target)
