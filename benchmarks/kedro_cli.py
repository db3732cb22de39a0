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
DIST_INFO_PREFIXES = ("kedro_mlflow_starter-", "kedro_mlflow_starter.egg-info")


def _patch_entry_points(hide_plugin: bool) -> None:
    """Both modes list entry points through this same code, so they pay the same cost."""
    original_distributions = metadata.distributions

    def is_plugin(dist: metadata.Distribution) -> bool:
        # The dist-info folder name, not dist.name: reading every METADATA file costs 0.5 s.
        folder = getattr(dist, "_path", None)
        return folder is not None and str(folder).rsplit("/", 1)[-1].startswith(DIST_INFO_PREFIXES)

    def distributions(**params):
        return (dist for dist in original_distributions(**params) if not (is_plugin(dist) and hide_plugin))

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
    _patch_entry_points(hide_plugin=mode == "--without-plugin")
    from kedro.framework.cli import main

    sys.argv[0] = "kedro"
    main()
