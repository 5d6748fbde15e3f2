"""One LoadGen test over the worker pool: the SUT and QSL callbacks, the settings, the run's own counters.

The QSL holds every query in memory from the start (the corpus is small; LoadGen's load and unload
callbacks have nothing to do). Responses are the transcripts as UTF-8 bytes, which LoadGen copies into
its accuracy log in accuracy mode and, in performance mode, for the sampled responses the audit compares.
"""
from __future__ import annotations

import array
import os
import threading
import time
from dataclasses import dataclass

from .queries import Query
from .workers import DONE, WorkerPool

SCENARIOS = {"offline": "Offline", "server": "Server"}
MODES = {"performance": "PerformanceOnly", "accuracy": "AccuracyOnly"}
NO_AUDIT_CONFIG = "/nonexistent/audit.config"  # LoadGen reads ./audit.config when present: never here


@dataclass
class TestPlan:
    scenario: str                 # offline | server
    mode: str                     # performance | accuracy
    qps: float                    # server: the Poisson arrival rate; offline: the expected rate (query size)
    latency_bound_ms: float
    percentile: float
    min_duration_ms: int
    min_query_count: int
    audit_probability: float      # performance mode: share of responses logged for the audit
    seed: int


def test_settings(lg, plan: TestPlan, n_samples: int):
    s = lg.TestSettings()
    s.scenario = getattr(lg.TestScenario, SCENARIOS[plan.scenario])
    s.mode = getattr(lg.TestMode, MODES[plan.mode])
    s.min_duration_ms = plan.min_duration_ms
    s.min_query_count = plan.min_query_count
    s.performance_sample_count_override = n_samples
    if plan.scenario == "server":
        s.server_target_qps = plan.qps
        s.server_target_latency_ns = int(plan.latency_bound_ms * 1e6)
        s.server_target_latency_percentile = plan.percentile
    else:
        s.offline_expected_qps = plan.qps
    for name in ("qsl_rng_seed", "sample_index_rng_seed", "schedule_rng_seed", "accuracy_log_rng_seed"):
        setattr(s, name, plan.seed)
    if plan.mode == "performance" and plan.audit_probability > 0:
        s.accuracy_log_probability = plan.audit_probability
    return s


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of these processes (/proc/<pid>/stat), in seconds."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / tick


def run_test(pool: WorkerPool, queries: list[Query], plan: TestPlan, out_dir: str) -> dict:
    import mlperf_loadgen as lg

    counters = {"completed": 0, "audio_s": 0.0, "failures": 0, "batches": {}, "first_issue": None,
                "last_done": None, "errors": []}
    lock = threading.Lock()

    def issue(samples):
        now = time.time()
        with lock:
            counters["first_issue"] = counters["first_issue"] or now
        pool.submit([(s.id, s.index) for s in samples])

    def respond():
        while True:
            kind, done = pool.results.get()
            if kind != DONE:
                return
            buffers = [array.array("B", text.encode("utf-8")) for text in done["texts"]]
            responses = [lg.QuerySampleResponse(sid, *buf.buffer_info())
                         for (sid, _), buf in zip(done["samples"], buffers)]
            lg.QuerySamplesComplete(responses)
            with lock:
                n = len(done["samples"])
                counters["completed"] += n
                counters["audio_s"] += sum(queries[idx].audio_s for _, idx in done["samples"])
                counters["batches"][n] = counters["batches"].get(n, 0) + 1
                counters["last_done"] = done["end"]
                bad = [e for e in done["errors"] if e]
                counters["failures"] += len(bad)
                counters["errors"] = (counters["errors"] + bad)[:5]

    responder = threading.Thread(target=respond, daemon=True)
    responder.start()
    sut = lg.ConstructSUT(issue, lambda: None)
    qsl = lg.ConstructQSL(len(queries), len(queries), lambda _: None, lambda _: None)
    log = lg.LogSettings()
    log.log_output.outdir = out_dir
    log.log_output.copy_summary_to_stdout = False
    pids = [os.getpid(), *pool.pids]
    cpu0, t0 = cpu_seconds(pids), time.time()
    try:
        lg.StartTestWithLogSettings(sut, qsl, test_settings(lg, plan, len(queries)), log, NO_AUDIT_CONFIG)
    finally:
        t1, cpu1 = time.time(), cpu_seconds(pids)
        pool.results.put(("stop", None))
        responder.join(timeout=30)
        lg.DestroyQSL(qsl)
        lg.DestroySUT(sut)
    busy_from = counters["first_issue"] or t0
    busy_s = max((counters["last_done"] or t1) - busy_from, 1e-9)
    return {
        "test_start_unix": t0, "test_end_unix": t1, "first_issue_unix": counters["first_issue"],
        "last_completion_unix": counters["last_done"], "served_s": busy_s,
        "completed_samples": counters["completed"], "audio_s": counters["audio_s"],
        "audio_s_per_s": counters["audio_s"] / busy_s, "failures": counters["failures"],
        "errors": counters["errors"], "batch_sizes": {str(k): v for k, v in sorted(counters["batches"].items())},
        "cpu_s": cpu1 - cpu0,
    }
