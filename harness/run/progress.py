"""Progress on the terminal: a bar for the overall plan, a bar per run, and a heartbeat line every N
seconds so that a long run in a log file (CI, nohup) still shows it is alive."""
from __future__ import annotations

import sys
import threading
import time

BAR_WIDTH = 24
# A fleet runs one SUT per thread: each thread's lines start with its SUT's name (and no line redraws).
_thread = threading.local()


def set_prefix(prefix: str) -> None:
    _thread.prefix = prefix


def _prefix() -> str:
    return getattr(_thread, "prefix", "")


def bar(done: int, total: int, width: int = BAR_WIDTH) -> str:
    filled = int(width * done / total) if total else 0
    return "[" + "#" * filled + "." * (width - filled) + "]"


def fmt_duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


class RunProgress:
    """One container run: files transcribed out of the total, elapsed time, heartbeat lines."""

    def __init__(self, label: str, total: int, heartbeat_s: float, stream=sys.stderr):
        self.label, self.total, self.heartbeat_s, self.stream = label, total, heartbeat_s, stream
        self.tty = stream.isatty() and not _prefix()
        self.start = self.last_beat = time.monotonic()
        self.done = 0

    def update(self, done: int) -> None:
        self.done = done
        now = time.monotonic()
        elapsed = now - self.start
        if self.tty:
            self.stream.write(f"\r  {self.label} {bar(done, self.total)} {done}/{self.total} files "
                              f"{fmt_duration(elapsed)}  ")
            self.stream.flush()
        if now - self.last_beat >= self.heartbeat_s:
            self.last_beat = now
            self._line(f"  heartbeat: {self.label} running {fmt_duration(elapsed)}, "
                       f"{done}/{self.total} files done")

    def finish(self, status: str, wall_s: float) -> None:
        self._line(f"  {self.label}: {status} in {wall_s:.1f} s ({self.done}/{self.total} files)")

    def _line(self, text: str) -> None:
        if self.tty:
            self.stream.write("\r\033[K")
        self.stream.write(_prefix() + text + "\n")
        self.stream.flush()


class PlanProgress:
    """The whole comparison: runs finished out of planned so far, elapsed time and an ETA. With a time
    budget the run ends by the budget (contender rounds fill it); without one the ETA is the runs left at
    the mean time per run so far."""

    def __init__(self, total: int, stream=sys.stderr, budget_s: float | None = None):
        self.total, self.stream, self.budget_s = total, stream, budget_s
        self.start = time.monotonic()
        self.done = 0

    def eta_s(self, elapsed: float) -> float | None:
        left = self.total - self.done
        per_run = elapsed / self.done if self.done else None
        planned = left * per_run if per_run is not None else None
        if self.budget_s is not None:  # the planned runs, or the budget's rest if contender rounds fill it
            return max(planned or 0.0, self.budget_s - elapsed, 0.0)
        return planned

    def starting(self, label: str, elapsed: float | None = None) -> None:
        elapsed = time.monotonic() - self.start if elapsed is None else elapsed
        eta = self.eta_s(elapsed)
        left = "" if eta is None else f", about {fmt_duration(eta)} left" + (
            f" (time budget {fmt_duration(self.budget_s)})" if self.budget_s is not None else "")
        self.stream.write(f"{_prefix()}{bar(self.done, self.total)} run {self.done + 1}/{self.total} "
                          f"({fmt_duration(elapsed)} elapsed{left}): {label}\n")
        self.stream.flush()

    def finished(self) -> None:
        self.done += 1
