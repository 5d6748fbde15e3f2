"""CPUs this process may run on, and thread-count variables bound before any numeric library loads.

Standard library only: `engines/__main__.py` calls `bind_threads` before numpy is imported, since
OpenBLAS and OpenMP read these variables once, when they load.
"""
from __future__ import annotations

import os

THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")
# numpy's OpenBLAS serves only host-side work here (the mel projection, a few MFLOP a window); its idle
# workers spin for about 0.1 s after each call (OpenBLAS's thread timeout) on the CPUs the engine's own
# pool needs next. One thread: ort's first encoder window of each file at 2 pinned CPUs 185 -> 123 ms
# (tiny.en int8, AMD EPYC). No engine's model runs on OpenBLAS: only numpy and scipy carry it.
NUMPY_BLAS_ENV = "OPENBLAS_NUM_THREADS"


def visible_cpus() -> list[int]:
    # Inside a cpuset os.cpu_count() still sees every host CPU; the affinity mask does not.
    return sorted(os.sched_getaffinity(0))


def pinned(threads: int) -> list[str]:
    """The command prefix that runs a child on the first `threads` CPUs this process may use (the host's
    benchmark scripts pin each engine as a container's cpuset would)."""
    return ["taskset", "-c", ",".join(map(str, visible_cpus()[:threads]))]


def bind_threads(threads: int) -> None:
    for var in THREAD_ENV:
        os.environ[var] = str(threads)
    os.environ[NUMPY_BLAS_ENV] = "1"


def threads_from_argv(argv: list[str]) -> int | None:
    """The --threads value of an engine command line ('auto' = every visible CPU), capped to the visible
    CPUs; None when absent or not a number (the argument parser then reports it)."""
    for i, arg in enumerate(argv):
        value = arg.split("=", 1)[1] if arg.startswith("--threads=") else (
            argv[i + 1] if arg == "--threads" and i + 1 < len(argv) else None)
        if value is None:
            continue
        n = len(visible_cpus()) if value == "auto" else (int(value) if value.isdigit() else None)
        return min(n, len(visible_cpus())) if n else None
    return None
