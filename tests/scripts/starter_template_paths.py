"""The template folders of the starters that the installed kedro_mlflow_starter declares to Kedro
(read in a fresh interpreter: PYTHONPATH decides which copy of the package it finds).

Input (JSON argument): none needed (``{}``).

Output: ``{"template_paths": [each starter's template_path, in the declared order]}``.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def main(args: dict[str, Any]) -> dict[str, Any]:
    from kedro_mlflow_starter.starters import starters

    return {"template_paths": [str(starter.template_path) for starter in starters]}


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
