"""Import modules (and names from them) in a fresh interpreter and report every module then loaded.

Input (JSON argument): ``imports``, a list of ``"package.module"`` (``import package.module``)
or ``"package.module:name"`` (``from package.module import name``), imported in order.

Output: ``{"modules": [every name in sys.modules, sorted]}``.
"""

from __future__ import annotations

import importlib
import json
import sys
from typing import Any


def main(args: dict[str, Any]) -> dict[str, Any]:
    for spec in args["imports"]:
        module_name, _, attribute = spec.partition(":")
        module = importlib.import_module(module_name)
        if attribute and not hasattr(module, attribute):  # `from package import submodule`
            importlib.import_module(f"{module_name}.{attribute}")
    return {"modules": sorted(sys.modules)}


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
