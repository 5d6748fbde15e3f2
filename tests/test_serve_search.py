"""The capacity search and the bound check, on a queue whose p99 grows as the offered load nears its capacity."""
import pytest

from harness.serve.search import Search, meets_bound


def queue_point(capacity: float, service_ms: float):
    """An M/M/1-like p99: service / (1 - load), unbounded past the capacity."""
    calls = []

    def measure(qps: float) -> dict:
        calls.append(qps)
        load = qps / capacity
        p99 = service_ms * 4.6 / (1 - load) if load < 1 else 1e9
        completed = min(qps, capacity)
        return {"status": "ok", "sut": {"failures": 0},
                "loadgen": {"latency_ms": {"p99": p99}, "min_duration_met": True, "min_queries_met": True,
                            "scheduled_qps": qps, "completed_qps": completed, "validity": "INVALID"}}
    return measure, calls


def test_search_finds_the_highest_rate_under_the_bound_within_its_tolerance():
    measure, calls = queue_point(capacity=2.0, service_ms=400)
    # p99 <= 5000 ms  <=>  load <= 1 - 1840/5000 = 0.632  <=>  qps <= 1.264
    search = Search(offline_qps=2.0, bound_ms=5000, steps=6)
    best = search.run(measure)
    assert best is not None and best["meets_bound"]
    assert 1.264 * 0.9 <= best["target_qps"] <= 1.264
    assert all(p["meets_bound"] == (p["target_qps"] <= 1.264) for p in search.points)
    assert len(calls) <= 7


def test_search_gives_up_when_even_a_light_load_breaks_the_bound():
    measure, _ = queue_point(capacity=2.0, service_ms=2000)  # p99 >= 9.2 s at any load
    search = Search(offline_qps=2.0, bound_ms=5000, steps=10)
    assert search.run(measure) is None
    assert all(not p["meets_bound"] for p in search.points)


@pytest.mark.parametrize("change,reason", [
    ({"min_duration_met": False}, "minimum"), ({"min_queries_met": False}, "minimum"),
    ({"latency_ms": {"p99": 6000}}, "over the"),
])
def test_a_point_fails_the_bound_for_a_short_run_or_a_slow_tail(change, reason):
    point = {"status": "ok", "sut": {"failures": 0},
             "loadgen": {"latency_ms": {"p99": 1000}, "min_duration_met": True, "min_queries_met": True,
                         "scheduled_qps": 2.0, "completed_qps": 2.0, "validity": "INVALID"}}
    assert meets_bound(point, 5000, mlperf=False) == (True, "meets the bound")
    assert not meets_bound(point, 5000, mlperf=True)[0]  # MLPerf durations: LoadGen's VALID is required
    point["loadgen"].update(change)
    ok, why = meets_bound(point, 5000, mlperf=False)
    assert not ok and reason in why
