"""Energy per audio hour, every figure labelled with where it came from.

- "rapl": the CPU packages' energy counters (powercap `intel-rapl:N/energy_uj`, also AMD's since Linux 5.8),
  sampled by the host through the run and integrated over the LoadGen test alone, minus the idle draw
  measured on the same counters for IDLE_S before the cell. Root only since Linux 5.10 (the harness runs as
  root where it starts Docker). It counts the whole package, hence the idle subtraction.
- "estimate": no readable counter (a VM, as here). CodeCarbon's load model: power = TDP x CPU load, here per
  busy CPU-second of the SUT's processes (/proc/<pid>/stat, read inside the container around the test) at
  TDP_W_PER_CPU watts: a server CPU's TDP over its hardware threads (EPYC 7763: 280 W / 128 = 2.2 W; Xeon
  8480+: 350 W / 112 = 3.1 W), default DEFAULT_TDP_W_PER_CPU. An estimate: it leaves out memory, uncore and
  the idle floor, and says so.
- NVML would be the source for a GPU; every engine here runs on CPUs, so no row uses it.

Watt-hours per audio hour equal joules per audio second: energy_J / audio_s.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

POWERCAP = Path("/sys/class/powercap")
DEFAULT_TDP_W_PER_CPU = 3.0
IDLE_S = 3.0
SAMPLE_S = 0.25
RAPL, ESTIMATE = "rapl", "estimate"


def rapl_packages(root: Path = POWERCAP) -> list[Path]:
    """The package-level RAPL zones whose counter this process can read (sub-zones would count twice)."""
    zones = []
    for zone in sorted(root.glob("intel-rapl:*")):
        if zone.name.count(":") != 1:
            continue
        try:
            int((zone / "energy_uj").read_text())
        except (OSError, ValueError):
            continue
        zones.append(zone)
    return zones


class RaplSampler:
    """A host thread that reads the packages' counters every SAMPLE_S: (unix time, joules since start)."""

    def __init__(self, zones: list[Path]):
        self.zones = zones
        self.ranges = [int((z / "max_energy_range_uj").read_text()) if (z / "max_energy_range_uj").exists()
                       else 2**64 for z in zones]
        self.samples: list[tuple[float, float]] = []
        self._last = self._read()
        self._total = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _read(self) -> list[int]:
        return [int((z / "energy_uj").read_text()) for z in self.zones]

    def _sample(self) -> None:
        now = self._read()
        for i, (a, b) in enumerate(zip(self._last, now)):
            self._total += ((b - a) % self.ranges[i]) / 1e6  # a counter that wrapped goes on from zero
        self._last = now
        self.samples.append((time.time(), self._total))

    def _loop(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            self._sample()

    def __enter__(self) -> RaplSampler:
        self.samples.append((time.time(), 0.0))
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def joules_between(self, t0: float, t1: float) -> float | None:
        """Energy over [t0, t1], interpolated between samples; None when the samples do not cover it."""
        if len(self.samples) < 2 or t0 < self.samples[0][0] or t1 > self.samples[-1][0]:
            return None
        return _at(self.samples, t1) - _at(self.samples, t0)


def _at(samples: list[tuple[float, float]], t: float) -> float:
    for (ta, ea), (tb, eb) in zip(samples, samples[1:]):
        if ta <= t <= tb:
            return ea + (eb - ea) * ((t - ta) / (tb - ta) if tb > ta else 0.0)
    return samples[-1][1]


def idle_watts(zones: list[Path], seconds: float = IDLE_S) -> float | None:
    if not zones:
        return None
    with RaplSampler(zones) as sampler:
        time.sleep(seconds)
    (t0, _), (t1, e1) = sampler.samples[0], sampler.samples[-1]
    return e1 / (t1 - t0) if t1 > t0 else None


def energy_figure(sut: dict, sampler: RaplSampler | None, idle_w: float | None, tdp_w_per_cpu: float) -> dict:
    """Energy of one LoadGen test and its Wh per audio hour, with the source named."""
    t0, t1 = sut.get("first_issue_unix"), sut.get("last_completion_unix")
    audio_s = sut.get("audio_s") or 0.0
    joules, source = None, None
    if sampler is not None and t0 and t1:
        total = sampler.joules_between(t0, t1)
        if total is not None:
            joules = max(total - (idle_w or 0.0) * (t1 - t0), 0.0)
            source = f"{RAPL} (package, idle {idle_w:.1f} W subtracted)" if idle_w is not None else f"{RAPL} (package)"
    if joules is None:
        joules = tdp_w_per_cpu * (sut.get("cpu_s") or 0.0)
        source = f"{ESTIMATE} ({tdp_w_per_cpu:g} W per busy CPU, TDP x load)"
    return {"joules": joules, "source": source, "wh_per_audio_hour": joules / audio_s if audio_s else None}
