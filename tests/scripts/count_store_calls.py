"""Run a project's default pipeline in a Kedro session, counting the SQL store calls that log
parameters (``log_batch`` calls without parameters, such as the node timings, are not counted).

Input (JSON argument): ``project_path``.

Output: ``{"calls": [the name of each counted store method call, in order]}``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def count_parameter_calls(calls: list[str]) -> None:
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    for name in ("log_batch", "log_param", "log_params"):
        original = getattr(SqlAlchemyStore, name, None)
        if original is None:
            continue

        def counting(self, *args, _original=original, _name=name, **kwargs):
            carried = kwargs.get("params", args[2] if _name == "log_batch" and len(args) > 2 else args[1:])
            if carried:  # the call carries parameters (node timings go out in a params-free log_batch)
                calls.append(_name)
            return _original(self, *args, **kwargs)

        setattr(SqlAlchemyStore, name, counting)


def main(args: dict[str, Any]) -> dict[str, Any]:
    calls: list[str] = []
    count_parameter_calls(calls)
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    root = Path(args["project_path"])
    bootstrap_project(root)
    with KedroSession.create(project_path=root) as session:
        session.run()
    return {"calls": calls}


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
