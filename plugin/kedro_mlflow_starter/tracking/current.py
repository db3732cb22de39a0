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
    """The run user code opened with ``mlflow.start_run()`` in this thread, if any.

    Only consulted when no Kedro run is open (a notebook's ``with mlflow.start_run():``);
    ``mlflow`` is not imported for it: if nothing imported it, no run can be active.
    """
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


# -- the Kedro run as the fluent "active run" of a node ----------------------------------------
# User code in a node may call `mlflow.active_run()` (to read the run id, to tag the run). The
# fluent active run is thread-local, so it is set around each node, in the thread (or worker
# process) that runs it, and taken off afterwards without ending the run. Our own code never
# reads it while a Kedro run is open.

_node_runs = threading.local()
_logger = logging.getLogger("kedro_mlflow_starter")


def enter_node_run() -> None:
    """Make the current Kedro run ``mlflow.active_run()`` for the node about to run in this thread."""
    run_id = active_run_id()
    stack = _entered_stack()
    if run_id is None or tracking_disabled():
        stack.append(None)
        return
    import mlflow

    from kedro_mlflow_starter.tracking.switches import autolog_in_this_process

    autolog_in_this_process()  # tracking.autolog: a worker process turns it on before its first node
    active = mlflow.active_run()
    if active is not None:  # user code (or a joined run) already made a run active here
        stack.append(None)
        return
    try:
        mlflow.start_run(run_id=run_id, log_system_metrics=False)
    except Exception as error:  # e.g. mlflow.set_experiment() to another experiment in user code
        _logger.debug("MLflow: could not make run %s active for the node: %s", run_id, error)
        stack.append(None)
        return
    stack.append(run_id)


def leave_node_run() -> None:
    """Undo ``enter_node_run`` for this thread; the run's status is left as it is."""
    stack = _entered_stack()
    run_id = stack.pop() if stack else None
    if run_id is None:
        return
    from kedro_mlflow_starter import compat

    compat.leave_fluent_run(run_id)


def leave_all_node_runs() -> None:
    """Undo every ``enter_node_run`` of this thread, and ``enter_pipeline_run``. A node
    interrupted by Ctrl-C or SIGTERM never gets its ``after_node_run``; left active, its run
    would be ended FINISHED by MLflow's own exit handler (an orchestrator's run included,
    which is not ours to end)."""
    while _entered_stack():
        leave_node_run()
    leave_pipeline_run()
    from kedro_mlflow_starter.tracking.switches import stop_run_switches

    stop_run_switches()


# -- the Kedro run as the fluent "active run" of the project's own hooks -----------------------
# kedro-mlflow's users read `mlflow.active_run().info.run_id` in their project's hooks
# (before_pipeline_run, after_node_run, after_pipeline_run, on_pipeline_error). From the
# hook's before_pipeline_run until the run is closed (after the project's after_pipeline_run or
# on_pipeline_error), the Kedro run is the fluent active run of the thread that runs the
# pipeline. It is taken off the fluent stack, never ended, by the fluent API: the run object
# records the status.

_pipeline_run: dict[str, Any] = {}  # {"run_id": ..., "thread": ident} while entered


def enter_pipeline_run() -> None:
    """Make the current Kedro run ``mlflow.active_run()`` in this thread for the whole pipeline."""
    run_id = active_run_id()
    if run_id is None or tracking_disabled() or _pipeline_run:
        return
    import mlflow

    if mlflow.active_run() is not None:  # the user's own run, joined: it is active already
        return
    try:
        mlflow.start_run(run_id=run_id, log_system_metrics=False)
    except Exception as error:  # e.g. MLFLOW_EXPERIMENT_ID names another experiment
        _logger.debug("MLflow: could not make run %s active for the project's hooks: %s", run_id, error)
        return
    _pipeline_run.update(run_id=run_id, thread=threading.get_ident())


def leave_pipeline_run() -> None:
    """Undo ``enter_pipeline_run`` (in the thread that entered it); the run's status is left as it is."""
    if not _pipeline_run or _pipeline_run["thread"] != threading.get_ident():
        return
    run_id = _pipeline_run.pop("run_id")
    _pipeline_run.clear()
    from kedro_mlflow_starter import compat

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
        for key, value in self._saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved = {}


def register_request_header_provider(config: RequestHeaderProviderConfig | None,
                                     context: KedroContext | None = None) -> None:
    """Honour ``server.request_header_provider`` of mlflow.yml (kedro-mlflow's key).

    ``type`` names a subclass of MLflow's ``RequestHeaderProvider``; it is built with
    ``init_kwargs`` (and ``kedro_context=<the context>`` when ``pass_context`` is true) and
    asked for headers on every request to the tracking server. Nothing happens (and
    ``mlflow`` is not imported) when ``type`` is null, as in the file ``kedro mlflow init``
    writes.
    """
    if config is None or not config.type:
        return
    from kedro.utils import load_obj

    from kedro_mlflow_starter import compat
    from kedro_mlflow_starter.errors import MlflowConfigError

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
