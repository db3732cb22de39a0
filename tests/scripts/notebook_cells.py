"""A notebook: code cells run one after another by IPython, in the project folder (the cwd).

Input (JSON argument): ``cells``, a list of cell sources (magics such as
``%load_ext kedro.ipython`` included).

Output: ``{"cells": [for each cell, {"ok": bool, "error": str or null, "result": repr of the
value the cell shows, or null}]}``. A failing cell stops the notebook, as "Run all" does.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def main(args: dict[str, Any]) -> dict[str, Any]:
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    cells = []
    for source in args["cells"]:
        outcome = shell.run_cell(source, store_history=True)
        error = outcome.error_before_exec or outcome.error_in_exec
        cells.append({
            "ok": outcome.success,
            "error": None if error is None else f"{type(error).__name__}: {error}",
            "result": None if outcome.result is None else repr(outcome.result),
        })
        if not outcome.success:
            break
    return {"cells": cells}


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
