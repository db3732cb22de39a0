"""Import the given modules and exit non-zero if any of them imported ``mlflow``.

Input (JSON argument): ``modules``, a list of dotted module names.
"""

import importlib
import json
import sys

for name in json.loads(sys.argv[1])["modules"]:
    importlib.import_module(name)
loaded = sorted(m for m in sys.modules if m == "mlflow" or m.startswith("mlflow."))
assert not loaded, f"mlflow was imported: {loaded[:5]}"
print("CLEAN")
