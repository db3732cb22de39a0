"""The current Kedro run as every thread and process sees it (run id, store, failure ledger, published
as environment variables by the run), and the Kedro run as MLflow's fluent active run of a node and of
the project's own hooks. ``mlflow`` is imported only when a client is first needed."""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from kedro_mlflow_starter import compat
from kedro_mlflow_starter.errors import MlflowConfigError

if TYPE_CHECKING:  # pragma: no cover
    from kedro.framework.context import KedroContext

    from kedro_mlflow_starter.config.mlflow_config import RequestHeaderProviderConfig
    from mlflow import MlflowClient

ENV_RUN_ID = "KEDRO_MLFLOW_RUN_ID"
ENV_TRACKING_DISABLED = "KEDRO_MLFLOW_TRACKING_DISABLED"
ENV_FAILURE_LOG = "KEDRO_MLFLOW_FAILURE_LOG"
ENV_PENDING_DIR = "KEDRO_MLFLOW_PENDING_DIR"
"""Where what could not be logged is kept for ``kedro mlflow run replay`` (tracking/replay.py)."""


def active_run_id() -> str | None:
    """The id of the run the current ``kedro run`` logs into, if any."""
    return os.environ.get(ENV_RUN_ID) or None


def tracking_disabled() -> bool:
    """True when this ``kedro run`` is deliberately not tracked."""
    return os.environ.get(ENV_TRACKING_DISABLED) == "1"


def user_run_id() -> str | None:
    """The run user code opened with ``mlflow.start_run()`` in this thread, if any (without importing
    ``mlflow``: if nothing imported it, no run can be active)."""
    if "mlflow" not in sys.modules:
        return None
    import mlflow

    active = mlflow.active_run()
    return active.info.run_id if active is not None else None


def store_uris() -> tuple[str | None, str | None]:
    """The tracking and registry URIs the current session published (None: MLflow's default)."""
    return os.environ.get("MLFLOW_TRACKING_URI"), os.environ.get("MLFLOW_REGISTRY_URI")


def current_client() -> MlflowClient:
    """The client of this process for the store the current session names."""
    from kedro_mlflow_starter.tracking.client import client_for

    return client_for(*store_uris())


# The Kedro run as MLflow's (thread-local) fluent active run of a node and of the project's hooks, where user code
# reads `mlflow.active_run()`; it is taken off the fluent stack afterwards, never ended by it.

_node_runs = threading.local()
_logger = logging.getLogger("kedro_mlflow_starter")
_pipeline_run: dict[str, Any] = {}  # {"run_id": ..., "thread": ident} while entered


def _make_active(run_id: str, for_what: str) -> bool:
    """Make ``run_id`` the fluent active run of this thread (False: a run is active already, or it failed)."""
    import mlflow

    if mlflow.active_run() is not None:  # user code (or a joined run) already made a run active here
        return False
    try:
        mlflow.start_run(run_id=run_id, log_system_metrics=False)
    except Exception as error:  # e.g. mlflow.set_experiment() to another experiment in user code
        _logger.debug("MLflow: could not make run %s active for %s: %s", run_id, for_what, error)
        return False
    return True


def enter_node_run() -> None:
    """Make the current Kedro run ``mlflow.active_run()`` for the node about to run in this thread."""
    run_id = active_run_id()
    if run_id is None or tracking_disabled():
        _entered_stack().append(None)
        return
    from kedro_mlflow_starter.tracking.switches import autolog_in_this_process  # switches imports this module

    autolog_in_this_process()  # tracking.autolog: a worker process turns it on before its first node
    _entered_stack().append(run_id if _make_active(run_id, "the node") else None)


def leave_node_run() -> None:
    """Undo ``enter_node_run`` for this thread; the run's status is left as it is."""
    stack = _entered_stack()
    run_id = stack.pop() if stack else None
    if run_id is not None:
        compat.leave_fluent_run(run_id)


def leave_all_node_runs() -> None:
    """Undo every ``enter_node_run`` of this thread (a node interrupted by Ctrl-C or SIGTERM gets no
    ``after_node_run``: MLflow's exit handler would end its run FINISHED), and ``enter_pipeline_run``."""
    while _entered_stack():
        leave_node_run()
    leave_pipeline_run()
    from kedro_mlflow_starter.tracking.switches import stop_run_switches  # switches imports this module

    stop_run_switches()


def enter_pipeline_run() -> None:
    """Make the current Kedro run ``mlflow.active_run()`` in this thread until the run is closed (the project's
    hooks read it, as kedro-mlflow's users do)."""
    run_id = active_run_id()
    if run_id is None or tracking_disabled() or _pipeline_run:
        return
    if _make_active(run_id, "the project's hooks"):
        _pipeline_run.update(run_id=run_id, thread=threading.get_ident())


def leave_pipeline_run() -> None:
    """Undo ``enter_pipeline_run`` (in the thread that entered it); the run's status is left as it is."""
    if not _pipeline_run or _pipeline_run["thread"] != threading.get_ident():
        return
    run_id = _pipeline_run.pop("run_id")
    _pipeline_run.clear()
    compat.leave_fluent_run(run_id)


def _entered_stack() -> list[str | None]:
    if not hasattr(_node_runs, "stack"):
        _node_runs.stack = []
    return _node_runs.stack


class PublishedEnvironment:
    """Environment variables set for a while, then restored exactly as they were."""

    def __init__(self) -> None:
        self._saved: dict[str, str | None] = {}

    def set(self, values: Mapping[str, str | None]) -> None:
        """Set (or, for None, remove) each variable, remembering its first previous value."""
        for key, value in values.items():
            self._saved.setdefault(key, os.environ.get(key))
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    def store(self, tracking_uri: str, registry_uri: str | None) -> None:
        """Point MLflow (ours and the user's fluent calls) at this store."""
        self.set({"MLFLOW_TRACKING_URI": tracking_uri, "MLFLOW_REGISTRY_URI": registry_uri})

    def run(self, run_id: str, failure_log: str | None, pending_dir: str | None = None) -> None:
        """Make ``run_id`` the run every dataset and fluent ``mlflow.log_*`` call logs into."""
        self.set({ENV_RUN_ID: run_id, "MLFLOW_RUN_ID": run_id, ENV_TRACKING_DISABLED: None,
                  ENV_FAILURE_LOG: failure_log, ENV_PENDING_DIR: pending_dir})

    def untracked(self) -> None:
        """Datasets save locally and log nothing."""
        self.set({ENV_TRACKING_DISABLED: "1", ENV_RUN_ID: None})

    def restore(self) -> None:
        self.set(self._saved)  # each key is saved already: set() only writes the saved values back
        self._saved = {}


def register_request_header_provider(config: RequestHeaderProviderConfig | None,
                                     context: KedroContext | None = None) -> None:
    """Honour ``server.request_header_provider`` of mlflow.yml (kedro-mlflow's key): build ``type`` with
    ``init_kwargs`` (and ``kedro_context`` when ``pass_context``); ``type: null`` imports no mlflow."""
    if config is None or not config.type:
        return
    from kedro.utils import load_obj


    where = "server.request_header_provider in conf/*/mlflow.yml"
    try:
        provider_class = load_obj(config.type)
    except Exception as error:
        raise MlflowConfigError(
            f"{where}: `type: {config.type}` cannot be imported ({error}). Give the dotted path of "
            "a class, e.g. `my_project.auth.TokenHeaderProvider`, or set `type: null`."
        ) from None
    from mlflow.tracking.request_header.abstract_request_header_provider import RequestHeaderProvider

    if not (isinstance(provider_class, type) and issubclass(provider_class, RequestHeaderProvider)):
        raise MlflowConfigError(
            f"{where}: `type: {config.type}` is not a subclass of MLflow's RequestHeaderProvider "
            "(mlflow.tracking.request_header.abstract_request_header_provider)."
        )
    kwargs = dict(config.init_kwargs or {})
    if config.pass_context:
        kwargs["kedro_context"] = context
    try:
        provider = provider_class(**kwargs)
    except TypeError as error:
        raise MlflowConfigError(
            f"{where}: {config.type} cannot be built with init_kwargs {sorted(kwargs)}: {error}."
        ) from None
    compat.register_request_header_provider(provider)
