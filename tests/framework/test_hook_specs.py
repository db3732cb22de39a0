"""The hook implements Kedro hook specifications, each once (a second `def` of the same name
would silently replace the first: merged features then stop working without an error)."""

from __future__ import annotations

import ast
import inspect
from collections import Counter
from pathlib import Path

from kedro.framework.hooks import specs

HOOKS = Path(__file__).resolve().parents[2] / "plugin" / "kedro_mlflow_starter" / "framework" / "hooks.py"


def _hook_methods() -> list[str]:
    tree = ast.parse(HOOKS.read_text(encoding="utf-8"))
    [hook_class] = [item for item in tree.body if isinstance(item, ast.ClassDef) and item.name == "MlflowHook"]
    return [
        item.name for item in hook_class.body
        if isinstance(item, ast.FunctionDef) and any(_is_hook_impl(d) for d in item.decorator_list)
    ]


def _is_hook_impl(decorator: ast.expr) -> bool:
    """``@hook_impl`` or ``@hook_impl(wrapper=True)`` / ``@hook_impl(trylast=True)``."""
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    return getattr(target, "id", None) == "hook_impl"


def test_every_hook_method_is_defined_once_and_is_a_kedro_hook_spec() -> None:
    methods = _hook_methods()
    assert [name for name, count in Counter(methods).items() if count > 1] == []
    spec_names = {name for _, spec_class in inspect.getmembers(specs, inspect.isclass)
                  for name, _ in inspect.getmembers(spec_class, inspect.isfunction)}
    assert set(methods) <= spec_names, set(methods) - spec_names
    assert {"before_node_run", "after_node_run", "before_pipeline_run", "after_pipeline_run"} <= set(methods)
