"""Operator-level profile of the `ort` sessions (`python -m engines ort --profile`): onnxruntime's own
profiler, reduced to time per operator type and session, written beside the run's results.

The profile's event durations are microseconds per node run; summing them by operator type shows where
a build spends its time (MatMul vs attention vs layer norm, encoder vs decoder)."""
from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from pathlib import Path

PROFILE_CSV = "ort_profile_ops.csv"
PROFILE_MD = "ort_profile_ops.md"
TOP_N = 15


def op_times(profile_json: Path) -> dict[str, dict]:
    """op type -> {"calls", "total_ms"} from one session's profile file."""
    out: dict[str, dict] = defaultdict(lambda: {"calls": 0, "total_ms": 0.0})
    for event in json.loads(profile_json.read_text()):
        if event.get("cat") != "Node" or not event.get("name", "").endswith("_kernel_time"):
            continue
        op = (event.get("args") or {}).get("op_name", "?")
        out[op]["calls"] += 1
        out[op]["total_ms"] += event.get("dur", 0) / 1000.0
    return dict(out)


def summarize(profiles: dict[str, Path], out_dir: Path) -> list[dict]:
    """Rows (session, op, calls, total_ms, share of all kernel time) sorted by time; written as CSV and
    Markdown into out_dir; the profile files themselves are removed (they run to hundreds of MB)."""
    rows = []
    for session, path in profiles.items():
        for op, t in op_times(path).items():
            rows.append({"session": session, "op": op, "calls": t["calls"], "total_ms": round(t["total_ms"], 3)})
        path.unlink(missing_ok=True)
    total = sum(r["total_ms"] for r in rows) or 1.0
    for r in rows:
        r["share_pct"] = round(100 * r["total_ms"] / total, 2)
    rows.sort(key=lambda r: -r["total_ms"])
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["session", "op", "calls", "total_ms", "share_pct"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    (out_dir / PROFILE_CSV).write_text(buf.getvalue())
    lines = ["| session | operator | calls | total ms | share % |", "|---|---|---|---|---|"]
    lines += [f"| {r['session']} | {r['op']} | {r['calls']} | {r['total_ms']:.1f} | {r['share_pct']:.1f} |"
              for r in rows[:TOP_N]]
    (out_dir / PROFILE_MD).write_text("\n".join(lines) + "\n")
    return rows
