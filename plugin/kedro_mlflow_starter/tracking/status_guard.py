"""Keep a run's status honest when ``kedro run`` is interrupted.

Kedro does not call ``on_pipeline_error`` for KeyboardInterrupt, SIGTERM kills Python
without unwinding by default, and MLflow's own exit handler marks an open fluent run
FINISHED. While a run is open this guard turns SIGTERM into an interruption and, at
interpreter exit, records any run still open as KILLED (interrupted) or FAILED.
"""

from __future__ import annotations

import atexit
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any


class TerminatedError(KeyboardInterrupt):
    """Raised in the main thread when the process receives SIGTERM during a tracked run."""


class StatusGuard:
    def __init__(self, close: Callable[[str], None]) -> None:
        self._close = close
        self._previous_sigterm: Any = None
        self.interrupted = False
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
        self.interrupted = True
        raise TerminatedError("kedro run received SIGTERM")

    def _at_exit(self) -> None:
        if self._armed:
            self._armed = False
            self._close("KILLED")
