"""CPU sets: the kernel's list format, physical cores with SMT siblings together, and whether a set is quiet.

A "core" in CORES_LIST is a logical CPU: a set of 4 on an SMT host is two physical cores with both
siblings each (reported per run in run.json's `smt`).
"""
from __future__ import annotations

import os
import re
import time
from pathlib import Path

from engines.cpus import visible_cpus as usable_cpus  # noqa: F401  (the harness's own affinity)

from ..errors import UserError

SYSFS_CPU = Path("/sys/devices/system/cpu")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")  # /proc/stat counts in these per second


def parse_cpu_list(text: str) -> list[int]:
    """'0-3,8,10-11' -> [0, 1, 2, 3, 8, 10, 11] (the kernel's cpulist format)."""
    cpus: set[int] = set()
    for part in filter(None, (p.strip() for p in text.split(","))):
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            raise UserError(f"CPU list {text!r}: {part!r} is not a CPU number or range like 0-3")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi < lo:
            raise UserError(f"CPU list {text!r}: range {part!r} runs backwards")
        cpus.update(range(lo, hi + 1))
    return sorted(cpus)


def format_cpu_list(cpus) -> str:
    cpus = sorted(cpus)
    parts, start = [], None
    for i, c in enumerate(cpus):
        if start is None:
            start = c
        if i + 1 == len(cpus) or cpus[i + 1] != c + 1:
            parts.append(f"{start}" if start == c else f"{start}-{c}")
            start = None
    return ",".join(parts)


def physical_cores(cpus: list[int], sysfs: Path = SYSFS_CPU) -> list[list[int]]:
    """The CPUs grouped by physical core (SMT siblings together), ordered by their lowest CPU."""
    groups: dict[tuple, list[int]] = {}
    for cpu in cpus:
        topo = sysfs / f"cpu{cpu}" / "topology"
        try:
            key = (int((topo / "physical_package_id").read_text()), int((topo / "core_id").read_text()))
        except (OSError, ValueError):  # no topology exposed (some VMs): every CPU is its own core
            key = ("cpu", cpu)
        groups.setdefault(key, []).append(cpu)
    return sorted((sorted(g) for g in groups.values()), key=lambda g: g[0])


def choose_cpuset(pool: list[int], n: int, sysfs: Path = SYSFS_CPU) -> tuple[list[int], dict]:
    """n CPUs from the pool, whole physical cores first so that SMT siblings sit together."""
    cores = physical_cores(pool, sysfs)
    chosen: list[int] = []
    used_cores = []
    for core in cores:
        if len(chosen) >= n:
            break
        take = core[: n - len(chosen)]
        chosen.extend(take)
        used_cores.append(take)
    smt = {"physical_cores": used_cores, "smt_siblings_in_set": any(len(c) > 1 for c in used_cores),
           "split_core": any(len(t) < len(c) for t, c in zip(used_cores, cores))}
    return chosen, smt


def default_cores_list(n_cpus: int) -> list[int]:
    """Every power of two up to the host's CPUs (and the full count when it is not one)."""
    out, c = [], 1
    while c <= n_cpus:
        out.append(c)
        c *= 2
    if out[-1] != n_cpus:
        out.append(n_cpus)
    return out


def _cpu_times(stat_text: str) -> dict[int, tuple[int, int]]:
    """cpu -> (busy jiffies, total jiffies) from /proc/stat (iowait counts as idle)."""
    out = {}
    for line in stat_text.splitlines():
        m = re.match(r"cpu(\d+)\s+(.*)", line)
        if not m:
            continue
        values = [int(v) for v in m.group(2).split()]
        idle = values[3] + (values[4] if len(values) > 4 else 0)
        out[int(m.group(1))] = (sum(values[:8]) - idle, sum(values[:8]))
    return out


def busy_seconds(cpus, stat: Path = Path("/proc/stat")) -> float:
    """CPU-seconds the given CPUs have spent busy since boot (a snapshot; subtract two)."""
    times = _cpu_times(stat.read_text())
    return sum(times[c][0] for c in cpus if c in times) / CLOCK_TICKS


def foreign_share(busy_delta_s: float, own_cpu_s: float, wall_s: float, n_cpus: int) -> float:
    """Share of the cell's CPU capacity that something other than the run used while it ran."""
    if wall_s <= 0 or n_cpus <= 0:
        return 0.0
    return max(0.0, busy_delta_s - own_cpu_s) / (wall_s * n_cpus)


def cpu_busy(cpus, seconds: float = 1.0, stat: Path = Path("/proc/stat")) -> dict[int, float]:
    """Share of time (0..1) each CPU was busy over a sample of `seconds`."""
    before = _cpu_times(stat.read_text())
    time.sleep(seconds)
    after = _cpu_times(stat.read_text())
    out = {}
    for cpu in cpus:
        if cpu in before and cpu in after:
            busy = after[cpu][0] - before[cpu][0]
            total = after[cpu][1] - before[cpu][1]
            out[cpu] = busy / total if total > 0 else 0.0
    return out
