"""A cell's row: one per cell, built from its cell.json alone; what is derived across rows (gate, scaling,
decoding differences) is added by `gate.add_derived`. Every exporter and the racing schedule read rows.

`runs` maps "<run id>:<round>" to the corpus RTF of each counted run (ok, not loaded): runs of one run id
in the same round ran back to back and pair; runs of different run ids never pair.
"""
from __future__ import annotations

import hashlib
import json

from engines.results import Status

from ..scoring.normalizers import GATE_NORMALIZER
from .measurements import reduce_rounds
from .records import run_rtfs
from .stats import NOISY_CV_PCT, Estimate

WHISPER_NORMALIZER = "whisper-en"
# The host facts that make two machines different for a comparison (not the host name, not the commit).
FINGERPRINT_FIELDS = ("cpu_model", "isa", "smt", "governor", "boost", "microcode", "transparent_hugepages",
                      "cgroup", "kernel")


def fingerprint_id(host: dict | None) -> str | None:
    if not host or not host.get("cpu_model"):
        return None
    facts = {k: host.get(k) for k in FINGERPRINT_FIELDS}
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:10]


def versions_text(versions: dict) -> str:
    """{"engine": {"onnxruntime": "1.31.1"}, "numpy": "2.1"} -> "onnxruntime 1.31.1, numpy 2.1"."""
    flat = []
    for key, value in (versions or {}).items():
        if isinstance(value, dict):
            flat += [f"{k} {v}" for k, v in value.items()]
        else:
            flat.append(f"{key} {value}")
    return ", ".join(flat)


def run_key(record_round: dict) -> str:
    return f"{record_round.get('run_id') or 'run'}:{record_round['round']}"


def counted_runs(record: dict) -> dict[str, float]:
    by_round = {r["round"]: r for r in record.get("rounds", [])}
    return {run_key(by_round[k]): v for k, v in run_rtfs(record).items()}


def row_from_cell(record: dict) -> dict:
    rounds = record.get("rounds", [])
    ok_rounds = [r for r in rounds if r["status"] == Status.OK]
    timed = ok_rounds or [r for r in rounds if r["status"] == Status.PARTIAL]
    runs = counted_runs(record)
    est = Estimate.from_values(runs.values())
    finished = record.get("status") in (Status.OK, Status.PARTIAL)
    acc = (record.get("accuracy") or {}) if finished else {}
    gate_acc, whisper_acc = acc.get(GATE_NORMALIZER) or {}, acc.get(WHISPER_NORMALIZER) or {}
    rtf = est.point if est else None
    last = rounds[-1] if rounds else {}
    applied = record.get("decoding_applied") or {}
    digests = {r.get("transcripts") for r in ok_rounds if r.get("transcripts")}
    host = record.get("host") or {}
    return {
        "sut": record.get("sut"), "shape": record.get("shape"), "cell": record.get("cell"),
        "engine": record.get("engine"), "model": record.get("model"), "variant": record.get("variant"),
        "precision": record.get("precision"), "cores": record.get("cores"), "threads": record.get("threads"),
        "memory_gb": record.get("memory_gb"), "cpuset": record.get("cpuset"),
        "corpus_id": record.get("corpus_id"), "status": record.get("status") or "unknown",
        "batch": (record.get("decoding") or {}).get("batch_size") or 1,
        "runs": runs, "n_rounds": len(runs), "n_rounds_run": len(rounds),
        "run_ids": sorted({r.get("run_id") for r in rounds if r.get("run_id")}),
        "n_files": last.get("n_files"), "n_ok": last.get("n_ok"), "failures": last.get("failures"),
        "rtf": rtf, "rtf_min": min(runs.values()) if runs else None,
        "rtf_cv_pct": est.cv_pct if est else None,
        "rtf_ci_low": est.low if est else None, "rtf_ci_high": est.high if est else None,
        "noisy": "noisy" if est and est.cv_pct is not None and est.cv_pct > NOISY_CV_PCT else "",
        "loaded_rounds": [r["round"] for r in rounds if r.get("loaded")],
        "loaded": "loaded" if any(r.get("loaded") for r in rounds) else "",
        "rerun_rounds": [a.get("round") for a in record.get("loaded_attempts") or []],
        "rtfx": 1 / rtf if rtf else None,
        **reduce_rounds(timed, rounds),
        "last_wall_s": next((r.get("host_wall_s") for r in reversed(rounds) if r.get("host_wall_s")), None),
        "wer": gate_acc.get("wer"), "cer": gate_acc.get("cer"), "wer_vs_baseline": gate_acc.get("wer_vs_baseline"),
        "wer_range": gate_acc.get("wer_range"),
        "wer_whisper": whisper_acc.get("wer"), "cer_whisper": whisper_acc.get("cer"),
        "transcripts_vary": len(digests) > 1,
        "error": record.get("error") or "",
        "convention": record.get("convention"),
        "decoding": record.get("decoding") or {},
        "decoding_applied": {**applied, "convention": record.get("convention")} if applied else {},
        "decoding_key": json.dumps({k: v for k, v in (record.get("decoding") or {}).items()}, sort_keys=True),
        "notes": "; ".join(record.get("notes") or []),
        "versions": record.get("versions") or {}, "versions_text": versions_text(record.get("versions") or {}),
        "image_id": (record.get("image_id") or "")[:19],
        "replica": record.get("replica") or 0,
        "host": host, "fingerprint": fingerprint_id(host),
    }
