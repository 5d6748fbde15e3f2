"""Stopping cleanly on SIGINT, SIGTERM and SIGHUP.

A shell's background job starts with SIGINT ignored, so Python's default KeyboardInterrupt never comes:
the handlers are installed explicitly. The first signal raises `Stopped` in the main thread; further
ones during the clean-up are only counted, so that removing the container is never cut short.
"""
from __future__ import annotations

import signal
from contextlib import contextmanager

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Stopped(BaseException):
    """The harness was told to stop; `exit_code` is 128 + the signal number (130, 143, 129)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.name = signal.Signals(signum).name
        self.exit_code = 128 + signum


@contextmanager
def stop_on_signals():
    state = {"raised": False}

    def handler(signum, _frame):
        if not state["raised"]:
            state["raised"] = True
            raise Stopped(signum)

    previous = {s: signal.signal(s, handler) for s in SIGNALS}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
