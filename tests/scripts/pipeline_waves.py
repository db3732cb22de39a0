"""A registered pipeline's nodes in topological waves (Kedro's own grouping), read in a fresh
interpreter after bootstrapping the project.

Input (JSON argument): ``project_path``, ``pipeline`` (a registered pipeline's name).

Output: ``{"waves": [[node names of a wave, sorted], ...]}``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def main(args: dict[str, Any]) -> dict[str, Any]:
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(Path(args["project_path"]))
    from kedro.framework.project import pipelines

    return {"waves": [sorted(n.name for n in group) for group in pipelines[args["pipeline"]].grouped_nodes]}


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
