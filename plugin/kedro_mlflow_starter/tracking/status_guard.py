"""Keep a run's status honest when ``kedro run`` is interrupted.

Kedro does not call ``on_pipeline_error`` for KeyboardInterrupt, SIGTERM kills Python
without unwinding by default, and MLflow's own exit handler marks an open fluent run
FINISHED. While a run is open this guard turns SIGTERM into an interruption and, at
interpreter exit, records any run still open as KILLED.

With ParallelRunner a SIGTERM (from a scheduler, ``kill``) reaches only the main process,
whose executor would then wait for the running nodes to end; the guard passes the signal on
to the worker processes so the whole run stops. Forked workers inherit the handler and
simply terminate as they would without it.
"""

from __future__ import annotations

import atexit
import os
import re
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from kedro_mlflow_starter.errors import TerminatedError

# multiprocessing names a manager's server process after its class: "SyncManager-1", ...
_MANAGER_PROCESS = re.compile(r"\w*Manager-")


class StatusGuard:
    def __init__(self, close: Callable[[str], Any]) -> None:
        self._close = close
        self._previous_sigterm: Any = None
        self._pid = os.getpid()
        self._armed = False

    def arm(self) -> None:
        self._armed = True
        atexit.register(self._at_exit)
        if threading.current_thread() is threading.main_thread():
            self._previous_sigterm = signal.signal(signal.SIGTERM, self._on_sigterm)

    def disarm(self) -> None:
        if not self._armed:
            return
        self._armed = False
        atexit.unregister(self._at_exit)
        if self._previous_sigterm is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._previous_sigterm)
            self._previous_sigterm = None

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        if os.getpid() != self._pid:  # a forked worker: die as if no handler were installed
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        _terminate_workers()
        raise TerminatedError("kedro run received SIGTERM")

    def _at_exit(self) -> None:
        if self._armed and os.getpid() == self._pid:
            self._armed = False
            self._close("KILLED")


def _terminate_workers() -> None:
    """SIGTERM the multiprocessing children of this process (ParallelRunner's workers).

    Manager server processes (Kedro's ``ParallelRunnerManager-1``) are left alone: they run
    no node, and the manager's own exit finalizer shuts them down cleanly as this process
    exits. Killed, one would leave its ``pymp-*`` socket folder in the temp folder.
    """
    if "multiprocessing" not in sys.modules:
        return
    import multiprocessing

    for child in multiprocessing.active_children():
        if _MANAGER_PROCESS.match(child.name or ""):
            continue
        try:
            child.terminate()
        except (OSError, AttributeError):
            continue
