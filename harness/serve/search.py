"""The capacity search: the highest Server QPS whose p99 latency meets the bound.

A Server run cannot sustain more than the Offline throughput X (the same workers, never idle), so the
search brackets [0, X]: the first probe at FIRST_FRACTION x X, then bisection between the highest rate that
met the bound and the lowest that did not, `steps` probes in all after the first, stopping early when the
bracket is narrower than TOLERANCE of its top. The criterion is LoadGen's own: p99 within the bound, the
minimum duration and query count met (and, with MLPerf durations, LoadGen's VALID, early stopping
included). A rate above capacity builds a queue whose latencies grow through the run, which its p99 shows;
completed against scheduled queries per second is no test on a short run (the last queries' latency
stretches the completed rate's window). Each probe is one LoadGen run; the points are kept for the plot.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

FIRST_FRACTION = 0.6
TOLERANCE = 0.05
FLOOR_FRACTION = 1 / 32   # below this share of X the search gives up: nothing meets the bound


def meets_bound(point: dict, bound_ms: float, mlperf: bool) -> tuple[bool, str]:
    """Whether one Server run met the bound, and why not."""
    lg = point.get("loadgen") or {}
    sut = point.get("sut") or {}
    if point.get("status") != "ok":
        return False, f"run {point.get('status')}: {point.get('error') or 'no result'}"
    p99 = (lg.get("latency_ms") or {}).get("p99")
    if p99 is None:
        return False, "no p99 in LoadGen's log"
    if p99 > bound_ms:
        return False, f"p99 {p99:.0f} ms over the {bound_ms:.0f} ms bound"
    if not (lg.get("min_duration_met") and lg.get("min_queries_met")):
        return False, "LoadGen's minimum duration or query count not met"
    if sut.get("failures"):
        return False, f"{sut['failures']} queries failed"
    if mlperf and lg.get("validity") != "VALID":
        return False, f"LoadGen: {lg.get('validity')} ({lg.get('invalid_reason') or lg.get('early_stopping')})"
    return True, "meets the bound"


@dataclass
class Search:
    offline_qps: float
    bound_ms: float
    steps: int
    mlperf: bool = False
    points: list[dict] = field(default_factory=list)

    def run(self, measure: Callable[[float], dict]) -> dict | None:
        """measure(qps) runs one Server test and returns its point; the best point that met the bound, or None."""
        top = self.offline_qps
        lo, hi = 0.0, top
        qps = round(FIRST_FRACTION * top, 3)
        best = None
        for _ in range(self.steps + 1):
            point = measure(qps)
            ok, why = meets_bound(point, self.bound_ms, self.mlperf)
            point.update(target_qps=qps, meets_bound=ok, verdict=why)
            self.points.append(point)
            if ok:
                lo, best = qps, point if best is None or qps > best["target_qps"] else best
            else:
                hi = qps
            if hi - lo < TOLERANCE * hi:
                break
            if lo == 0.0 and hi <= FLOOR_FRACTION * top:
                break
            qps = round((lo + hi) / 2, 3) if lo > 0 else round(hi / 2, 3)
        return best
