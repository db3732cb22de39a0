"""Build small, real Kedro projects in temp folders for the tests.

``make_project`` writes a minimal but complete Kedro 1.x project (pyproject with
``[tool.kedro]``, settings, a pipeline registry, conf/base, conf/local, data) whose nodes
and registry are given as source text, so each test states exactly what it runs.
``run_kedro`` runs the ``kedro`` command of this venv in it as a subprocess, as a user would;
``run_kedro_in_process`` runs the same command line in the test process (the same CLI, hooks and
output), for tests where a fresh process is not the point; ``kedro_process_state`` is the
isolation both it and in-process ``KedroSession`` tests need (cwd, environment, the project's
modules, Kedro's project globals, MLflow's fluent store URIs: all restored after).
``run_script`` runs one of the programs of ``tests/scripts`` in a fresh interpreter, its inputs
given as one JSON argument; ``script_result`` also checks it succeeded and reads back the JSON it
printed on its last line.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

KEDRO = str(Path(sys.executable).with_name("kedro"))
SCRIPTS = Path(__file__).resolve().parent / "scripts"

DEFAULT_NODES = '''
import pandas as pd


def double(df: pd.DataFrame, factor: float) -> pd.DataFrame:
    return df * factor


def total(df: pd.DataFrame, model_options: dict) -> float:
    return float(df.to_numpy().sum()) + model_options["bias"]
'''

DEFAULT_REGISTRY = '''
from kedro.pipeline import Pipeline, node


def register_pipelines():
    from {package}.nodes import double, total

    processing = Pipeline([node(double, ["raw", "params:factor"], "doubled", name="double")])
    summary = Pipeline([node(total, ["doubled", "params:model_options"], "result", name="total")])
    return {{"__default__": processing + summary, "processing": processing, "summary": summary}}
'''

DEFAULT_PARAMETERS: dict[str, Any] = {"factor": 2.0, "model_options": {"bias": 1.5, "layers": {"depth": 3}}}

DEFAULT_CATALOG: dict[str, Any] = {
    "raw": {"type": "pandas.CSVDataset", "filepath": "data/01_raw/raw.csv"},
    "doubled": {"type": "pandas.CSVDataset", "filepath": "data/02_intermediate/doubled.csv"},
}


@dataclass
class KedroProject:
    path: Path
    package: str

    @property
    def conf(self) -> Path:
        return self.path / "conf"

    @property
    def db(self) -> Path:
        return self.path / "mlflow.db"

    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{self.db.as_posix()}"

    def write(self, relative: str, text: str) -> Path:
        target = self.path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return target

    def write_yaml(self, relative: str, data: Any) -> Path:
        return self.write(relative, yaml.safe_dump(data, sort_keys=False))

    def run(self, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
            check: bool = False, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return run_kedro(*args, cwd=cwd or self.path, env=env, check=check, timeout=timeout)

    def run_in_process(self, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
                       check: bool = False) -> subprocess.CompletedProcess[str]:
        return run_kedro_in_process(*args, cwd=cwd or self.path, env=env, check=check)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def project_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment a user's shell would have, without MLflow state leaking from the tests."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "KEDRO_MLFLOW_"))}
    env["KEDRO_DISABLE_TELEMETRY"] = "true"
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["COLUMNS"] = "250"  # rich wraps log lines at the terminal width
    env.update(extra or {})
    return env


def run_kedro(*args: str, cwd: Path, env: dict[str, str] | None = None, check: bool = False,
              timeout: float = 300) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [KEDRO, *args], cwd=cwd, env=project_env(env), capture_output=True, text=True, timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"kedro {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def forget_package(package: str) -> None:
    """Drop a generated project's modules: the next project of the same name imports its own."""
    for name in [name for name in sys.modules if name == package or name.startswith(f"{package}.")]:
        del sys.modules[name]


OUTSIDE_PROJECT_CLI = "kedro_mlflow_starter.framework.cli_outside_project"


@contextlib.contextmanager
def kedro_process_state(package: str, cwd: Path, env: dict[str, str] | None = None) -> Iterator[None]:
    """The test process as a fresh ``kedro`` process of project ``package`` would be, for the block.

    Inside: the current folder is ``cwd``, ``os.environ`` is ``project_env(env)`` (no MLflow
    variable of the tests' shell), no module of ``package`` is imported yet. After: the folder,
    the environment, ``sys.path``, ``sys.excepthook``, MLflow's fluent tracking/registry URIs
    and Kedro's project globals (package name, pipelines) are what they were, and the project's
    modules are dropped again (generated projects share package names). The plugin's hook is a
    new ``MlflowHook`` for the block, as in a new process (the entry point loads
    ``hooks.mlflow_hook`` anew for each session).
    """
    import importlib

    import kedro.framework.project as kedro_project
    import rich
    from kedro.framework.cli.utils import KedroCliError
    from mlflow.tracking import fluent
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    from kedro_mlflow_starter.framework import hooks

    saved_env, saved_path, saved_cwd, saved_hook = dict(os.environ), list(sys.path), os.getcwd(), sys.excepthook
    saved_uris = tracking_utils._tracking_uri, registry_utils._registry_uri
    # process-wide state a `kedro` command may change: `--verbose`, the loggers' levels
    # (KEDRO_LOGGING_CONFIG), the fluent experiment (user code's mlflow.set_experiment)
    ours = logging.getLogger("kedro_mlflow_starter")
    saved_verbose, saved_level, saved_experiment = KedroCliError.VERBOSE_ERROR, ours.level, fluent._active_experiment_id
    saved_package, console = kedro_project.PACKAGE_NAME, rich.get_console()
    saved_width, saved_mlflow_hook, saved_stack = console._width, hooks.mlflow_hook, inspect.stack
    root = logging.getLogger()
    saved_root_handlers, saved_configure = list(root.handlers), kedro_project.LOGGING.configure

    def configure_keeping_pytest_handlers(logging_config: dict) -> None:
        # Kedro's dictConfig (run the first time a process configures a package) replaces the root
        # logger's handlers, caplog's among them: put pytest's back (only theirs: Kedro's own from an
        # earlier block would print every line twice).
        saved_configure(logging_config)
        root.handlers.extend(h for h in saved_root_handlers
                             if h not in root.handlers and type(h).__module__.startswith("_pytest"))

    kedro_project.LOGGING.configure = configure_keeping_pytest_handlers
    # the global `kedro mlflow` group decides on import whether the current folder is a project:
    # imported anew for the block's folder, as a new process would, and put back after
    saved_outside_cli = sys.modules.pop(OUTSIDE_PROJECT_CLI, None)
    hooks.mlflow_hook = hooks.MlflowHook()
    inspect.stack = _stack_without_source
    forget_package(package)
    importlib.invalidate_caches()
    fresh_env = project_env(env)
    os.environ.clear()
    os.environ.update(fresh_env)
    console.width = int(os.environ["COLUMNS"])  # rich wraps log lines at the terminal width
    os.chdir(cwd)
    try:
        with warnings.catch_warnings():
            _python_default_warning_filters()
            yield
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        sys.path[:] = saved_path
        sys.excepthook = saved_hook
        tracking_utils._tracking_uri, registry_utils._registry_uri = saved_uris
        KedroCliError.VERBOSE_ERROR, fluent._active_experiment_id = saved_verbose, saved_experiment
        ours.setLevel(saved_level)
        kedro_project.LOGGING.configure = saved_configure
        sys.modules.pop(OUTSIDE_PROJECT_CLI, None)
        if saved_outside_cli is not None:
            sys.modules[OUTSIDE_PROJECT_CLI] = saved_outside_cli
        console._width = saved_width
        hooks.mlflow_hook = saved_mlflow_hook
        inspect.stack = saved_stack
        kedro_project.PACKAGE_NAME = saved_package
        kedro_project.pipelines.configure(None)
        forget_package(package)


def _python_default_warning_filters() -> None:
    """The warning filters of a ``python`` started without ``-W`` (not pytest's), shown on stderr."""
    warnings.resetwarnings()
    for category in (ResourceWarning, ImportWarning, PendingDeprecationWarning, DeprecationWarning):
        warnings.filterwarnings("ignore", category=category)
    warnings.filterwarnings("default", category=DeprecationWarning, module="__main__")
    warnings.showwarning = _warning_to_stderr  # pytest records them otherwise


def _warning_to_stderr(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                       file: Any = None, line: str | None = None) -> None:
    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def _stack_without_source(context: int = 1) -> list[inspect.FrameInfo]:
    """``inspect.stack()`` without each frame's source lines. Kedro's settings loader (dynaconf)
    calls ``inspect.stack()`` for file names only; under pytest's deep stack the real one
    looks up the module of every frozen import frame (~1 s a ``kedro`` command)."""
    frames, frame = [], sys._getframe(1)
    while frame is not None:
        frames.append(inspect.FrameInfo(frame, frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name, None,
                                        None))
        frame = frame.f_back
    return frames


def run_kedro_in_process(*args: str, cwd: Path, env: dict[str, str] | None = None,
                         check: bool = False) -> subprocess.CompletedProcess[str]:
    """``kedro <args>`` from ``cwd``, in this process: Kedro's own CLI entry point (plugins'
    commands and hooks included), its output captured, an uncaught exception printed by
    ``sys.excepthook`` (Kedro's and the plugin's formats) and exit code 1, as the process would."""
    from kedro.framework.cli.cli import KedroCLI, _init_plugins
    from kedro.utils import find_kedro_project

    root = find_kedro_project(cwd)
    package = _package_of(root) if root else "__no_project__"
    out, err = io.StringIO(), io.StringIO()
    with kedro_process_state(package, cwd, env), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            _init_plugins()
            KedroCLI(project_path=root or cwd).main(list(args), prog_name="kedro")
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
            if not isinstance(exit_.code, int | None):
                err.write(f"{exit_.code}\n")
        except Exception:  # uncaught: the interpreter would print it and exit 1
            sys.excepthook(*sys.exc_info())
            code = 1
    result = subprocess.CompletedProcess(["kedro", *args], code, out.getvalue(), err.getvalue())
    if check and result.returncode != 0:
        raise AssertionError(f"kedro {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


@dataclass
class ForkedKedro:
    """A ``kedro`` command running in a child forked from the test process (``start_kedro_in_fork``)."""

    process: Any  # multiprocessing.Process
    args: tuple[str, ...]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait(self, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Its exit code, and its output (stdout then stderr) as ``stdout``, once it ended."""
        self.process.join(timeout)
        if self.process.exitcode is None:
            self.process.kill()
            self.process.join()
            raise AssertionError(f"kedro {' '.join(self.args)} (pid {self.pid}) did not end in {timeout} s")
        text = self.log.read_text(encoding="utf-8") if self.log.exists() else ""
        return subprocess.CompletedProcess(["kedro", *self.args], self.process.exitcode, text, "")


def start_kedro_in_fork(*args: str, cwd: Path, log: Path, env: dict[str, str] | None = None) -> ForkedKedro:
    """``kedro <args>`` from ``cwd`` in a new process forked from this one, which runs
    ``run_kedro_in_process`` and exits with its code, its output written to ``log``.

    A real process of its own (its own pid, store connections, atexit functions), started at
    once without the ~5 s of a new interpreter's imports: for tests whose point is two
    processes at the same time, not a fresh interpreter. ``wait()`` reads back the result.
    """
    import multiprocessing

    # what every plugin run imports, imported here once rather than in each child
    from kedro.framework.cli.cli import KedroCLI  # noqa: F401
    from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore  # noqa: F401
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore as TrackingStore  # noqa: F401

    process = multiprocessing.get_context("fork").Process(target=_kedro_in_child, args=(args, cwd, env, log))
    process.start()
    return ForkedKedro(process, tuple(args), log)


def _kedro_in_child(args: tuple[str, ...], cwd: Path, env: dict[str, str] | None, log: Path) -> None:
    import atexit

    atexit._clear()  # the test process's exit functions are not this process's to run
    with contextlib.suppress(Exception):  # store connections of the test process stay its own
        from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore as RegistryStore
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        for engine in [*SqlAlchemyStore._engine_map.values(), *RegistryStore._engine_map.values()]:
            engine.dispose(close=False)
    try:
        result = run_kedro_in_process(*args, cwd=cwd, env=env)
        log.write_text(result.stdout + result.stderr, encoding="utf-8")
    finally:
        atexit._run_exitfuncs()  # what the command registered, as a process's exit runs it
    sys.exit(result.returncode)


def run_session_in_process(project: Any, env: dict[str, str] | None = None,
                           runtime_params: dict[str, Any] | None = None, **run: Any) -> Any:
    """``bootstrap_project`` then ``KedroSession.create(...).run(**run)`` in this process, as a
    script or a notebook would (``kedro_process_state`` around it), for a project with a
    ``path`` (``KedroProject``, ``GeneratedProject``); returns what ``run`` returned."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    with kedro_process_state(_package_of(project.path), project.path, env):
        bootstrap_project(project.path)
        with KedroSession.create(project_path=project.path, runtime_params=runtime_params) as session:
            return session.run(**run)


def _package_of(root: Path) -> str:
    import tomllib

    return tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["kedro"]["package_name"]


def make_project(
    root: Path,
    package: str = "demo_project",
    nodes: str = DEFAULT_NODES,
    registry: str = DEFAULT_REGISTRY,
    parameters: dict[str, Any] | None = None,
    catalog: dict[str, Any] | None = None,
    mlflow_yml: dict[str, Any] | str | None = None,
    settings: str = "",
    raw_rows: int = 3,
) -> KedroProject:
    """A runnable Kedro project at ``root/<package>`` (``mlflow_yml`` None: no mlflow.yml)."""
    path = root / package.replace("_", "-")
    project = KedroProject(path=path, package=package)
    project.write(
        "pyproject.toml",
        f'''
        [project]
        name = "{package}"
        version = "0.1"
        requires-python = ">=3.10"

        [tool.kedro]
        package_name = "{package}"
        project_name = "{package}"
        kedro_init_version = "1.0.0"
        source_dir = "src"
        ''',
    )
    src = f"src/{package}"
    project.write(f"{src}/__init__.py", '__version__ = "0.1"\n')
    project.write(f"{src}/settings.py", settings or "\n")
    project.write(f"{src}/nodes.py", nodes)
    project.write(f"{src}/pipeline_registry.py", registry.format(package=package))
    project.write_yaml("conf/base/parameters.yml", DEFAULT_PARAMETERS if parameters is None else parameters)
    project.write_yaml("conf/base/catalog.yml", DEFAULT_CATALOG if catalog is None else catalog)
    (path / "conf/local").mkdir(parents=True, exist_ok=True)
    if isinstance(mlflow_yml, str):
        project.write("conf/base/mlflow.yml", mlflow_yml)
    elif mlflow_yml is not None:
        project.write_yaml("conf/base/mlflow.yml", mlflow_yml)
    rows = "\n".join(f"{i},{i * 10}" for i in range(raw_rows))
    project.write("data/01_raw/raw.csv", f"a,b\n{rows}\n")
    return project


def run_script(name: str, args: dict[str, Any] | None = None, *, python: str | Path = sys.executable,
               cwd: Path | str | None = None, env: dict[str, str] | None = None,
               timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``tests/scripts/<name>.py`` with ``python`` (this venv's by default) in a new process.

    ``args`` goes as the script's one argument, in JSON. ``env`` is the whole environment
    (None: this process's); the script's folder, not ``cwd``, is first on its ``sys.path``.
    """
    script = SCRIPTS / f"{name}.py"
    if not script.is_file():
        raise FileNotFoundError(f"no script {script}")
    return subprocess.run(
        [str(python), str(script), json.dumps(args or {})], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=timeout, stdin=subprocess.DEVNULL,
    )


def script_result(name: str, args: dict[str, Any] | None = None, *, what: str | None = None,
                  python: str | Path = sys.executable, cwd: Path | str | None = None,
                  env: dict[str, str] | None = None, timeout: float = 300) -> Any:
    """``run_script``, asserted to exit 0, then the JSON the script printed on its last line."""
    result = run_script(name, args, python=python, cwd=cwd, env=env, timeout=timeout)
    assert result.returncode == 0, (
        f"{what or name} failed ({result.returncode}):\n{result.stdout[-6000:]}\n{result.stderr[-6000:]}")
    lines = result.stdout.strip().splitlines()
    assert lines, f"{what or name} printed nothing:\n{result.stderr[-6000:]}"
    return json.loads(lines[-1])
