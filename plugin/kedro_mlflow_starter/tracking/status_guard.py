"""Keep a run's status honest when ``kedro run`` is interrupted: SIGTERM becomes an interruption
(passed on to ParallelRunner's workers), and a run still open at interpreter exit is KILLED; the
long-running ``kedro mlflow`` commands take SIGTERM as Ctrl-C the same way (``signals_interrupt``)."""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

from kedro_mlflow_starter.errors import TerminatedError

# multiprocessing names a manager's server process after its class: "SyncManager-1", ...
_MANAGER_PROCESS = re.compile(r"\w*Manager-")


class StatusGuard:
    """Armed while a run is open: ``close("KILLED")`` at exit, SIGTERM raised as ``TerminatedError``."""

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
    """SIGTERM ParallelRunner's workers; a manager's server process (no node; killed, it would leave
    its ``pymp-*`` folder in the temp folder) is shut down by the manager's own exit finalizer."""
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


@contextlib.contextmanager
def signals_interrupt(command: str, signals: tuple[signal.Signals, ...] = (signal.SIGTERM,)) -> Iterator[None]:
    """In the block, each of ``signals`` (SIGTERM: a service manager, an IDE's stop button; SIGHUP: the
    terminal closed) raises ``TerminatedError``, a ``KeyboardInterrupt``, so the command cleans up (its child
    processes, its runs) as on Ctrl-C."""
    def raise_terminated(signum: int, frame: FrameType | None) -> None:
        raise TerminatedError(f"{command} received {signal.Signals(signum).name}")

    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return
    previous = {each: signal.signal(each, raise_terminated) for each in signals}
    try:
        yield
    finally:
        for each, handler in previous.items():
            signal.signal(each, handler)
