"""`kedro` with or without this plugin's entry points, in the same interpreter.

`python kedro_cli.py --with-plugin ARGS` is `kedro ARGS`; `--without-plugin` hides every
entry point of the kedro-mlflow-starter distribution (hooks, commands, starters) before
Kedro looks for them: the honest "plugin not installed" baseline for the CLI start-up row,
paying the same wrapper cost.
"""

from __future__ import annotations

import importlib.metadata as metadata
import sys

DIST = "kedro-mlflow-starter"


def _hide_plugin() -> None:
    original_distributions = metadata.distributions

    def distributions(**params):
        return (dist for dist in original_distributions(**params) if dist.name != DIST)

    def entry_points(**params):
        seen: dict[tuple[str, str], metadata.EntryPoint] = {}
        for dist in distributions():
            for entry_point in dist.entry_points:
                seen.setdefault((entry_point.group, entry_point.name), entry_point)
        found = metadata.EntryPoints(seen.values())
        return found.select(**params) if params else found

    metadata.entry_points = entry_points
    metadata.distributions = distributions


if __name__ == "__main__":
    mode = sys.argv.pop(1)
    if mode == "--without-plugin":
        _hide_plugin()
    from kedro.framework.cli import main

    sys.argv[0] = "kedro"
    main()
