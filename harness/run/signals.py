"""Stopping cleanly on SIGINT, SIGTERM and SIGHUP.

A shell's background job starts with SIGINT ignored, so Python's default KeyboardInterrupt never comes:
the handlers are installed explicitly. The first signal raises `Stopped` in the main thread; further
ones during the clean-up are only counted, so that removing the container is never cut short. Runs in
other threads (a fleet runs one SUT per thread) see the signal through `STOPPING` and stop themselves.
A SIGHUP that arrives ignored stays ignored: `nohup` ignores it on purpose, so that a logout does not stop
the run (SIGINT arrives ignored by accident, in a background job, and gets its handler).
"""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
KEPT_IF_IGNORED = (signal.SIGHUP,)   # nohup's
STOPPING = threading.Event()    # set by the first signal; `stopped_by` names it
stopped_by: list[int] = []


class Stopped(BaseException):
    """The harness was told to stop; `exit_code` is 128 + the signal number (130, 143, 129)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.name = signal.Signals(signum).name
        self.exit_code = 128 + signum


def check_stop() -> None:
    """In a worker thread: raise `Stopped` once the main thread has received a stop signal."""
    if STOPPING.is_set():
        raise Stopped(stopped_by[0])


@contextmanager
def stop_on_signals():
    if threading.current_thread() is not threading.main_thread():  # handlers live in the main thread
        yield
        return
    STOPPING.clear()
    stopped_by.clear()
    state = {"raised": False}

    def handler(signum, _frame):
        if not state["raised"]:
            state["raised"] = True
            stopped_by.append(signum)
            STOPPING.set()
            raise Stopped(signum)

    previous = {s: signal.signal(s, handler) for s in SIGNALS
                if not (s in KEPT_IF_IGNORED and signal.getsignal(s) == signal.SIG_IGN)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
