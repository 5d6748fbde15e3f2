"""`python -m engines serve <engine> ...`: one LoadGen test of one engine layout, result files in --out."""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

from ..cpus import visible_cpus
from ..registry import SPECS, spec
from ..runner import write_atomic
from .loadgen_run import MODES, SCENARIOS, TestPlan, run_test
from .logs import DETAIL_LOG, QUERIES_FILE, SERVE_SUMMARY, loadgen_result, read_detail
from .queries import MAX_QUERY_S, build_queries
from .workers import Layout, WorkerPool


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m engines serve", description=__doc__)
    p.add_argument("engine", choices=sorted(SPECS))
    p.add_argument("--model-dir", required=True)
    p.add_argument("--model-name")
    p.add_argument("--audio-dir", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--precision")
    p.add_argument("--threads", type=int, required=True, help="threads per worker")
    p.add_argument("--workers", type=int, default=1, help="worker processes (workers x threads <= visible CPUs)")
    p.add_argument("--scenario", choices=sorted(SCENARIOS), required=True)
    p.add_argument("--mode", choices=sorted(MODES), default="performance")
    p.add_argument("--qps", type=float, default=1.0, help="server: arrival rate; offline: expected rate")
    p.add_argument("--latency-bound-ms", type=float, default=2000.0)
    p.add_argument("--percentile", type=float, default=0.99)
    p.add_argument("--min-duration-ms", type=int, default=10000)
    p.add_argument("--min-query-count", type=int, default=1)
    p.add_argument("--max-batch", type=int, default=1, help="dynamic batching: at most this many queries at once")
    p.add_argument("--batch-wait-ms", type=float, default=0.0, help="dynamic batching: wait for more this long")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--audit-probability", type=float, default=0.0,
                   help="performance mode: share of responses LoadGen logs for the audit")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--perturb-performance", action="store_true",
                   help="test only: drop each transcript's last word in performance mode (the audit must fail)")
    args = p.parse_args(argv)
    if min(args.threads, args.workers, args.max_batch) < 1 or args.qps <= 0:
        p.error("--threads, --workers and --max-batch must be >= 1, --qps > 0")
    return args


def run(args: argparse.Namespace) -> dict:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    precision = args.precision or spec(args.engine).default_variant
    queries, skipped = build_queries(args.audio_dir)
    if not queries:
        raise ValueError(f"{args.audio_dir}: no decodable audio")
    write_atomic(out / QUERIES_FILE, json.dumps({"max_query_s": MAX_QUERY_S, "queries": [q.describe() for q in queries],
                                                 "skipped": skipped}, indent=1) + "\n")
    layout = Layout(args.workers, args.threads, args.max_batch, args.batch_wait_ms / 1000)
    plan = TestPlan(args.scenario, args.mode, args.qps, args.latency_bound_ms, args.percentile,
                    args.min_duration_ms, args.min_query_count, args.audit_probability, args.seed)
    summary = {
        "schema_version": 1, "engine": args.engine, "model": args.model_name or Path(args.model_dir).name,
        "precision": precision, "scenario": args.scenario, "mode": args.mode,
        "layout": {"workers": layout.workers, "threads": layout.threads, "max_batch": layout.max_batch,
                   "batch_wait_ms": args.batch_wait_ms},
        "plan": vars(plan), "cpuset": visible_cpus(), "n_queries": len(queries),
        "qsl_audio_s": sum(q.audio_s for q in queries), "perturbed": args.perturb_performance,
        "environment": {"python": platform.python_version(), "platform": platform.platform()},
        "status": "running",
    }
    write_atomic(out / SERVE_SUMMARY, json.dumps(summary, indent=2) + "\n")
    pool = WorkerPool(args.engine, Path(args.model_dir), precision, layout, queries, args.warmup,
                      perturbed=args.perturb_performance and args.mode == "performance")
    t0 = time.perf_counter()
    try:
        ready = pool.start()
        summary["workers_ready_s"] = time.perf_counter() - t0
        summary["workers"] = ready
        summary["sut"] = run_test(pool, queries, plan, str(out))
    except Exception as exc:
        summary.update(status="failed", error=f"{type(exc).__name__}: {exc}")
        write_atomic(out / SERVE_SUMMARY, json.dumps(summary, indent=2) + "\n")
        raise
    finally:
        pool.stop()
    summary["loadgen"] = loadgen_result(read_detail(out / DETAIL_LOG))
    summary["status"] = "ok" if summary["sut"]["failures"] == 0 else "partial"
    write_atomic(out / SERVE_SUMMARY, json.dumps(summary, indent=2) + "\n")
    return summary


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        summary = run(args)
    except Exception as exc:
        print(f"error: serve {args.engine}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    lg = summary["loadgen"]
    print(f"serve {args.engine} {summary['precision']} {args.scenario} {args.mode} {args.workers}x{args.threads}: "
          f"{summary['sut']['completed_samples']} samples, LoadGen {lg['validity']}, "
          f"p99 {lg['latency_ms']['p99']} ms", file=sys.stderr)
    return 0 if summary["status"] == "ok" else 1
