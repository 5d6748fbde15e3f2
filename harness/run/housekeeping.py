"""A housekeeping CPU: where the host has more CPUs than the largest cell, the harness, dockerd and
containerd run on a CPU no cell uses, so the largest cell does not share its CPUs with them (without it,
its foreign CPU share was ~2 % at 2 cores against ~0.4 % at 1 core, which tilted speed-up and cost per
core-hour toward 1 core). Where the host cannot spare one, the record says so and the report repeats it.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

# Docker's daemons: their threads wake for every container start, log line and stats read.
DAEMONS = ("dockerd", "containerd")   # shims fork from containerd and inherit its affinity; a container
# process is moved to its cell's cpuset when it joins its cgroup


def split_pool(pool: list[int], largest_cell: int) -> tuple[list[int], int | None]:
    """(CPUs for cells, the housekeeping CPU or None). The housekeeping CPU is the pool's first: CPU 0
    also takes most device interrupts on Linux, so it is the one a cell least wants."""
    if len(pool) > largest_cell:
        return pool[1:], pool[0]
    return pool, None


def _daemon_pids() -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            name = (proc / "comm").read_text().strip()
        except OSError:
            continue
        if name in DAEMONS:
            pids.append(int(proc.name))
    return pids


def _pin_tasks(pid: int, cpus: set[int]) -> dict[int, set[int]]:
    """Pin every thread of pid; returns each thread's previous affinity."""
    before = {}
    try:
        tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return before
    for tid in tids:
        try:
            before[tid] = os.sched_getaffinity(tid)
            os.sched_setaffinity(tid, cpus)
        except OSError:  # exited, or not ours to move (a non-root harness cannot move dockerd)
            before.pop(tid, None)
    return before


@contextmanager
def housekeeping(cpu: int | None, remote: bool = False):
    """Move this process and the local Docker daemons onto `cpu` for the duration; yields what was done,
    for plan.json. Affinities are restored afterwards."""
    if cpu is None or remote:
        yield {"cpu": None, "note": "no housekeeping CPU: the host has no CPU beyond the largest cell, so the "
                                    "harness and Docker's daemons share the cells' CPUs"
               if cpu is None else "remote engine: its daemons are not this host's to move"}
        return
    moved: dict[int, set[int]] = {}
    own = _pin_tasks(os.getpid(), {cpu})
    for pid in _daemon_pids():
        moved.update(_pin_tasks(pid, {cpu}))
    try:
        yield {"cpu": cpu, "pinned_daemon_threads": len(moved), "note": f"harness and Docker's daemons on CPU {cpu}"}
    finally:
        for tid, cpus in {**moved, **own}.items():
            try:
                os.sched_setaffinity(tid, cpus)
            except OSError:
                pass
