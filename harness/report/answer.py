"""answer.json: every comparison's questions, verdicts, ties, gate and intervals, machine-readable, with a
schema version (answer.schema.json beside this module). RESULTS.md's verdicts and leaderboard and the
terminal's answer are rendered from it (report/verdict_text.py), never computed twice.
"""
from __future__ import annotations

import math
from pathlib import Path

from engines.results import Status

from ..evidence.gate import gated, group_rows
from ..evidence.stats import resolvable_ratio
from ..evidence.verdicts import Verdict, contests, decide
from ..layout import cell_label

SCHEMA_VERSION = 1
SCHEMA_PATH = Path(__file__).with_name("answer.schema.json")
LEADERBOARD_SIZE = 12


def _label(row: dict) -> str:
    return cell_label(row["cell"], row["cores"])


def _r(x, nd=4):
    return None if x is None else round(float(x), nd)


def _entry(row: dict) -> dict:
    return {"cell": _label(row), "engine": row["engine"], "variant": row["variant"], "cores": row["cores"],
            "rtf": _r(row["rtf"], 5), "rtf_low": _r(row.get("rtf_ci_low"), 5),
            "rtf_high": _r(row.get("rtf_ci_high"), 5),
            "rtfx": _r(row.get("rtfx"), 2), "audio_h_per_core_h": _r(row.get("audio_h_per_core_h"), 2),
            "wer": _r(row.get("wer")), "gate": row.get("accuracy_gate"), "rounds": row.get("n_rounds"),
            "status": row["status"], "cv_pct": _r(row.get("rtf_cv_pct"), 2),
            "flags": _flags(row), "decoding_diff": row.get("decoding_diff") or "",
            "versions": row.get("versions") or {}, "image_id": row.get("image_id")}


def _flags(row: dict) -> list[str]:
    out = []
    if row.get("noisy"):
        out.append(f"noisy (CV {row['rtf_cv_pct']:.1f} %)")
    if row.get("loaded_rounds"):
        out.append(f"run(s) under load not counted: round {', '.join(map(str, row['loaded_rounds']))}")
    if row.get("rerun_rounds"):
        out.append(f"re-run after a loaded attempt: round {', '.join(map(str, row['rerun_rounds']))}")
    if row.get("transcripts_vary"):
        rng = row.get("wer_range")
        out.append("transcripts change between rounds" + (f" (WER {100 * rng[0]:.2f}-{100 * rng[1]:.2f} %)"
                                                          if rng and rng[0] != rng[1] else ""))
    return out


def _standing(s) -> dict:
    r = s.ratio
    return {"cell": _label(s.row), "relation": s.relation,
            # how many times the leader's cost this row takes, with its interval
            "times_leader": _r(1 / r.point, 4) if r else None,
            "low": _r(1 / r.high, 4) if r and r.high else None, "high": _r(1 / r.low, 4) if r and r.low else None,
            "rounds": r.n if r else 0, "paired": r.paired if r else False,
            "smallest_resolvable": _resolvable(r, s) if s.relation == "tied" else None}


def _resolvable(r, s) -> float | None:
    """The ratio this many rounds would name 80 % of the time at the noise seen in this pair."""
    if r is None or r.low is None or r.n < 2:
        return None
    from ..evidence.stats import ALPHA, t_quantile

    half = (math.log(r.high) - math.log(r.low)) / 2
    sd = half * math.sqrt(r.n) / t_quantile(1 - ALPHA / 2, r.n - 1)
    found = resolvable_ratio(sd, r.n)
    return _r(found, 3) if found else None


def _caveats(verdict: Verdict) -> list[str]:
    rows = [verdict.leader] + [s.row for s in verdict.tied]
    out = []
    for row in rows:
        for flag in _flags(row):
            out.append(f"{_label(row)}: {flag}")
        if row.get("decoding_diff"):
            out.append(f"{_label(row)} decodes differently: {row['decoding_diff']}")
    if max((r.get("n_rounds") or 0) for r in rows) < 2:
        out.append("one round: a screen, not a measurement of run-to-run noise")
    return out


def question(verdict: Verdict) -> dict:
    status = "one candidate" if not verdict.others else "winner" if verdict.winner else "tie"
    return {"key": verdict.contest.key, "question": verdict.contest.question, "status": status,
            "per_core": verdict.contest.per_core, "leader": _entry(verdict.leader),
            "others": [_standing(s) for s in verdict.others], "caveats": _caveats(verdict)}


def anomalies(group: list[dict]) -> list[str]:
    """One line each: WER that changes with the core count, slower with more cores, noisy rows."""
    out = []
    by_cell: dict[str, list[dict]] = {}
    for row in group:
        if row["status"] == Status.OK:
            by_cell.setdefault(row["cell"], []).append(row)
    for cell, rows in sorted(by_cell.items()):
        rows.sort(key=lambda r: r["cores"])
        wers = [(r["cores"], r["wer"]) for r in rows if r.get("wer") is not None]
        if len({round(w, 4) for _, w in wers}) > 1:
            out.append(f"{cell}: WER changes with the core count (" + ", ".join(f"{100 * w:.2f} % at {c}c"
                                                                                 for c, w in wers) + ")")
        for a, b in zip(rows, rows[1:]):
            if a.get("rtf") and b.get("rtf") and b["rtf"] > a["rtf"] and (b.get("rtf_ci_low") or 0) > (
                    a.get("rtf_ci_high") or math.inf):
                out.append(f"{cell}: slower at {b['cores']}c than at {a['cores']}c (RTF {b['rtf']:.4f} vs "
                           f"{a['rtf']:.4f}, intervals apart)")
    for row in group:
        if row.get("transcripts_vary"):
            out.append(f"{_label(row)}: transcripts change between rounds")
    return out


def comparison(key: tuple, group: list[dict], info: dict, plans: dict) -> dict:
    first = group[0]
    candidates = gated(group)
    verdicts = [v for c in contests(candidates) if (v := decide(c)) is not None]
    runs = {}
    for row in group:
        for run_id in row.get("run_ids") or []:
            plan = plans.get(run_id) or {}
            runs[run_id] = {"run_id": run_id, "commit": (row.get("host") or {}).get("harness_commit"),
                            "seed": (plan.get("config") or {}).get("seed"), "started_at": plan.get("started_at")}
    reference = info.get("reference")
    leaderboard = sorted((r for r in group if r.get("rtf")), key=lambda r: (r["accuracy_gate"] == "FAIL",
                                                                          r["cores"], r["rtf"]))
    host = first.get("host") or {}
    return {
        "sut": first["sut"], "fingerprint": first.get("fingerprint"),
        "host": {k: host.get(k) for k in ("cpu_model", "isa", "smt", "kernel", "docker")},
        "model": first["model"], "corpus_id": first.get("corpus_id"), "memory_gb": first["memory_gb"],
        "batch": first.get("batch") or 1, "decoding": info.get("common_decoding") or {},
        "audio_s": max((r.get("total_audio_s") or 0) for r in group) or None,
        "runs": sorted(runs.values(), key=lambda r: r["run_id"]),
        "gate": {"rule": info.get("gate_rule", ""), "reference": _label(reference) if reference else None},
        "questions": [question(v) for v in verdicts],
        "leaderboard": [_entry(r) for r in leaderboard],
        "failed": [{"cell": _label(r), "status": r["status"], "error": r.get("error") or ""}
                   for r in group if r["status"] != Status.OK],
        "anomalies": anomalies(group),
    }


def build_answer(rows: list[dict], comparisons: dict, plans: dict) -> dict:
    groups = sorted(group_rows(rows).items(), key=lambda kv: (kv[0][0], -len(kv[1]), str(kv[0])))
    return {"schema": "whisper-bench-answer", "schema_version": SCHEMA_VERSION,
            "comparisons": [comparison(key, group, comparisons.get(key, {}), plans) for key, group in groups]}
