"""LoadGen's log files, read back (standard library only: the host imports this too).

LoadGen writes into --out: mlperf_log_summary.txt (what a person reads), mlperf_log_detail.txt (one
`:::MLLOG {json}` line per fact; the results are read from it) and mlperf_log_accuracy.json (every response
in accuracy mode; in performance mode the responses LoadGen sampled for the audit).
"""
from __future__ import annotations

import json
from pathlib import Path

SUMMARY_LOG = "mlperf_log_summary.txt"
DETAIL_LOG = "mlperf_log_detail.txt"
ACCURACY_LOG = "mlperf_log_accuracy.json"
SERVE_SUMMARY = "serve_summary.json"      # what the SUT adds: layout, audio seconds, CPU time, timestamps
QUERIES_FILE = "serve_queries.json"       # QSL index -> file, window, audio seconds
# What a serving container brings back to the host (harness/run/outputs.py copies these names; LoadGen's
# trace log, which can be large, stays behind).
SERVE_FILES = (SUMMARY_LOG, DETAIL_LOG, ACCURACY_LOG, SERVE_SUMMARY, QUERIES_FILE)
MLLOG = ":::MLLOG "
PERCENTILES = {"p50": "50.00", "p90": "90.00", "p95": "95.00", "p97": "97.00", "p99": "99.00", "p99.9": "99.90"}


def read_detail(path: Path) -> dict:
    """key -> value of every MLLOG line (the last one wins)."""
    out = {}
    for line in Path(path).read_text(errors="replace").splitlines():
        if line.startswith(MLLOG):
            try:
                entry = json.loads(line[len(MLLOG):])
            except ValueError:
                continue
            out[entry.get("key")] = entry.get("value")
    return out


def loadgen_result(detail: dict) -> dict:
    """LoadGen's verdict and figures for one test, latencies in ms."""
    def ms(key):
        value = detail.get(key)
        return value / 1e6 if isinstance(value, (int, float)) else None

    latency = {name: ms(f"result_{pct}_percentile_latency_ns") for name, pct in PERCENTILES.items()}
    latency.update(mean=ms("result_mean_latency_ns"), min=ms("result_min_latency_ns"), max=ms("result_max_latency_ns"))
    return {
        "scenario": detail.get("effective_scenario"), "mode": detail.get("effective_test_mode"),
        "validity": detail.get("result_validity"),
        "perf_constraints_met": detail.get("result_perf_constraints_met"),
        "min_duration_met": detail.get("result_min_duration_met"),
        "min_queries_met": detail.get("result_min_queries_met"),
        "early_stopping_met": detail.get("early_stopping_met"),
        "early_stopping": " ".join(str(detail.get("early_stopping_result") or "").split()) or None,
        "invalid_reason": detail.get("result_invalid_reason"),
        "target_qps": detail.get("effective_target_qps"),
        "target_latency_ms": ms("effective_target_latency_ns"),
        "scheduled_qps": detail.get("result_scheduled_samples_per_sec"),
        "completed_qps": detail.get("result_completed_samples_per_sec"),
        "samples_per_second": detail.get("result_samples_per_second"),
        "query_count": detail.get("result_query_count") or detail.get("generated_query_count"),
        "overlatency_query_count": detail.get("result_overlatency_query_count"),
        "latency_ms": latency,
        "loadgen_version": detail.get("loadgen_version"),
        "errors": detail.get("num_errors"),
    }


def read_responses(path: Path) -> list[dict]:
    """The logged responses: qsl_idx, seq_id and the transcript (the response bytes are UTF-8 text)."""
    try:
        entries = json.loads(Path(path).read_text() or "[]")
    except (OSError, ValueError):  # no log (the run did not get that far) or a cut-off one
        return []
    return [{"qsl_idx": e["qsl_idx"], "seq_id": e["seq_id"],
             "text": bytes.fromhex(e["data"]).decode("utf-8", errors="replace")} for e in entries]
