"""Shared fixtures: real Kedro projects, real SQLite tracking stores."""

from __future__ import annotations

import ast
import inspect
import os
import re
import shutil
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.project_factory import KedroProject, make_project

# Fixture modules shared by the whole suite, registered the pytest way.
pytest_plugins = ["tests.io_fixtures", "tests.server_fixtures", "tests.starter_fixtures", "tests.postgres_fixture"]

os.environ["KEDRO_DISABLE_TELEMETRY"] = "true"
os.environ.setdefault("DO_NOT_TRACK", "1")

# What may stay in the session's temp folder: nothing (the SQLite store lock is the database file itself).
TEMP_LEFTOVERS_ALLOWED: tuple[str, ...] = ()


# The test tiers (`make test-fast` runs the fast one, `make test` both). A test is `slow` when
# it is end-to-end, by rule, not by list: its module sits directly in tests/ (the user-level
# tier: kedro new, kedro run, servers, orchestrators), or the test, a fixture it uses or a
# function either calls (two levels down) starts a process (`subprocess`, `Popen`, the
# tests' own `run_kedro` / `run_script` / `script_result` / `kedro_new`, a project's
# `.run("...")` / `.kedro(...)`). What stays is the fast tier: tests/<package>/ unit tests
# and in-process Kedro sessions and datasets.
TESTS = Path(__file__).resolve().parent
STARTS_A_PROCESS = re.compile(
    r"\bsubprocess\b|\bPopen\b|\b(?:run_kedro|run_script|script_result|kedro_new)\(|\.run\(\s*['\"]|\.kedro\(")


def _starts_a_process(function: Any, depth: int = 2, seen: set[Any] | None = None) -> bool:
    seen = set() if seen is None else seen
    function = inspect.unwrap(function)
    if function in seen or not inspect.isfunction(function):
        return False
    seen.add(function)
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    except (OSError, TypeError, SyntaxError):
        return False
    for node in ast.walk(tree):  # docstrings may well mention processes: only the code counts
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and ast.get_docstring(node) is not None:
            node.body = node.body[1:] or [ast.Pass()]
    if STARTS_A_PROCESS.search(ast.unparse(tree)):
        return True
    if depth == 0:
        return False
    codes, names = [function.__code__], set()
    while codes:  # names used by the function and the functions, lambdas and comprehensions inside it
        code = codes.pop()
        names.update(code.co_names)
        codes.extend(const for const in code.co_consts if inspect.iscode(const))
    return any(_starts_a_process(function.__globals__[name], depth - 1, seen)
               for name in names if inspect.isfunction(function.__globals__.get(name)))


def _is_slow(item: pytest.Item) -> bool:
    if item.path.parent == TESTS or item.get_closest_marker("slow"):
        return True
    functions = [getattr(item, "function", None)]
    for name in item.fixturenames:
        functions.extend(definition.func for definition in item._fixtureinfo.name2fixturedefs.get(name, ()))
    return any(function is not None and _starts_a_process(function) for function in functions)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: end-to-end (starts processes); left out by `make test-fast`")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _is_slow(item):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session", autouse=True)
def session_temp_folder(tmp_path_factory: pytest.TempPathFactory):
    """A temp folder of the session's own, checked empty at the end: nothing leaks to the temp folder.

    TMPDIR and ``tempfile.tempdir`` point at it for the whole session, so the tests, the plugin
    and every subprocess (``kedro``, ``mlflow server``, cookiecutter) create their temporary
    files there. pytest's own ``tmp_path`` base is fixed first, outside it: what the tests keep
    on purpose in ``tmp_path`` is not a leak. At the end the session fails, listing every
    entry left behind (other than TEMP_LEFTOVERS_ALLOWED), and the folder is removed.
    """
    tmp_path_factory.getbasetemp()
    folder = Path(tempfile.mkdtemp(prefix="kedro-mlflow-starter-tests-tmp-")).resolve()
    saved_env, saved_tempdir = os.environ.get("TMPDIR"), tempfile.tempdir
    os.environ["TMPDIR"] = str(folder)
    tempfile.tempdir = str(folder)
    try:
        yield folder
    finally:
        if saved_env is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = saved_env
        tempfile.tempdir = saved_tempdir
        # This process's own download folder goes when pytest exits (the MLflow datasets keep
        # what loaded models may still read until then; test_no_litter.py checks the exit).
        allowed = (*TEMP_LEFTOVERS_ALLOWED, f"kedro-mlflow-downloads-{os.getpid()}-*")
        left = sorted(
            entry.name + ("/" if entry.is_dir() else "")
            for entry in folder.iterdir()
            if not any(entry.match(pattern) for pattern in allowed)
        )
        shutil.rmtree(folder, ignore_errors=True)
        if left:
            pytest.fail(
                f"The test session left {len(left)} entr{'y' if len(left) == 1 else 'ies'} in the temp "
                f"folder ({folder}): {', '.join(left)}. Find the code or test that creates them and "
                "remove them (tmp_path for test files; the plugin must clean up its own temp files).",
                pytrace=False,
            )


class LeakedMlflowRunWarning(UserWarning):
    """A test left a fluent MLflow run active in the pytest process (cleared after it)."""


@pytest.fixture(autouse=True)
def no_active_mlflow_run_left(request: pytest.FixtureRequest):
    """After each test, no fluent MLflow run is active in this process: one that is left would
    make the next test's ``mlflow.start_run`` raise "Run ... is already active" (seen once in
    CI, with no trace of which test left it). The run is taken off the stack, without ending
    it, and a warning in the session summary names the test that left it."""
    yield
    import sys

    fluent = sys.modules.get("mlflow.tracking.fluent")
    if fluent is None:
        return
    # A test's `mlflow.set_experiment` would make the next test's `start_run(run_id=...)` of a run in
    # another experiment raise "active experiment ID does not match" (seen under xdist).
    fluent._active_experiment_id = None
    from kedro_mlflow_starter import compat

    leaked = []
    while (run := fluent.active_run()) is not None:
        leaked.append(run.info.run_id)
        if not compat.leave_fluent_run(run.info.run_id):
            break
    if leaked:
        import warnings

        warnings.warn(LeakedMlflowRunWarning(
            f"{request.node.nodeid} left {len(leaked)} MLflow run(s) active in the test process: {leaked}; "
            "end them (`with mlflow.start_run():` or `mlflow.end_run()`)."), stacklevel=1)


@pytest.fixture(scope="session")
def migrated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty MLflow SQLite store, migrated once per test session (saves ~1.3 s a test)."""
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("store") / "mlflow.db"
    # MLflow fixes the Default experiment's artifact folder as <current directory>/mlruns when
    # it creates a store: create it from the store's own folder, never from the checkout.
    cwd = os.getcwd()
    os.chdir(path.parent)
    try:
        MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    finally:
        os.chdir(cwd)
    return path


# What a test run must never create in the checkout it runs from (a store or artifacts that
# some code wrote relative to the current directory instead of the project or tmp_path).
CHECKOUT_LEFTOVERS = ("mlruns", "mlflow.db", "mlartifacts")


@pytest.fixture(scope="session", autouse=True)
def checkout_stays_clean(request: pytest.FixtureRequest):
    root = Path(request.config.rootpath)
    before = {name for name in CHECKOUT_LEFTOVERS if (root / name).exists()}
    yield
    created = sorted(name for name in CHECKOUT_LEFTOVERS if (root / name).exists() and name not in before)
    if created:
        pytest.fail(f"The test session created {', '.join(created)} in the checkout ({root}): some code "
                    "resolved a store or artifact path against the current directory.", pytrace=False)


@pytest.fixture
def project(tmp_path: Path, migrated_db: Path) -> KedroProject:
    """The default small project with a pre-migrated store at <project>/mlflow.db."""
    created = make_project(tmp_path)
    shutil.copy(migrated_db, created.db)
    return created


@pytest.fixture(autouse=True)
def _clean_mlflow_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never inherit a tracking URI or run id from the shell or from each other."""
    for key in list(os.environ):
        if key.startswith(("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_RUN_ID", "KEDRO_MLFLOW_")):
            monkeypatch.delenv(key, raising=False)
