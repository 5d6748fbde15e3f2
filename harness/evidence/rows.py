"""The report's row: one per cell, built from its cell.json alone; derived columns across rows are
added by `answer.add_derived`. Every exporter reads these rows and nothing else."""
from __future__ import annotations

import json
import statistics

from engines.results import Status

from ..scoring.normalizers import GATE_NORMALIZER
from .cells import timing_matrix
from .stats import NOISY_CV_PCT, rtf_interval, spread

WHISPER_NORMALIZER = "whisper-en"


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _max(values):
    values = [v for v in values if v is not None]
    return max(values) if values else None


def row_from_cell(record: dict) -> dict:
    rounds = record.get("rounds", [])
    ok_rounds = [r for r in rounds if r["status"] == Status.OK]
    timed = ok_rounds or [r for r in rounds if r["status"] == Status.PARTIAL]
    sp = spread([r["rtf"] for r in timed if r.get("rtf")])
    times, audio, _ = timing_matrix(record)
    interval = rtf_interval(times, audio) if times.size else None
    finished = record.get("status") in (Status.OK, Status.PARTIAL)
    acc = (record.get("accuracy") or {}) if finished else {}
    gate_acc, whisper_acc = acc.get(GATE_NORMALIZER) or {}, acc.get(WHISPER_NORMALIZER) or {}
    rtf = sp["median"]
    last = rounds[-1] if rounds else {}
    applied = record.get("decoding_applied") or {}
    return {
        "sut": record.get("sut"), "shape": record.get("shape"), "cell": record.get("cell"),
        "engine": record.get("engine"), "model": record.get("model"), "variant": record.get("variant"),
        "precision": record.get("precision"), "cores": record.get("cores"), "threads": record.get("threads"),
        "memory_gb": record.get("memory_gb"), "cpuset": record.get("cpuset"),
        "corpus_id": record.get("corpus_id"), "status": record.get("status") or "unknown",
        "n_rounds": len(timed), "n_rounds_run": len(rounds),
        "n_files": last.get("n_files"), "n_ok": last.get("n_ok"), "failures": last.get("failures"),
        "rtf": rtf, "rtf_min": sp["min"], "rtf_cv_pct": sp["cv_pct"],
        "rtf_ci_low": interval[0] if interval else None, "rtf_ci_high": interval[1] if interval else None,
        "noisy": "noisy" if sp["cv_pct"] is not None and sp["cv_pct"] > NOISY_CV_PCT else "",
        "loaded": "loaded" if any(r.get("loaded") for r in rounds) else "",
        "rtfx": 1 / rtf if rtf else None,
        "p50_s": _median(r.get("p50_s") for r in timed), "p95_s": _median(r.get("p95_s") for r in timed),
        "mean_s": _median(r.get("mean_s") for r in timed),
        "total_audio_s": _median(r.get("total_audio_s") for r in timed),
        "processing_s": _median(r.get("processing_s") for r in timed),
        "load_s": _median(r.get("load_s") for r in timed),
        "peak_rss_mib": _max(r.get("peak_rss_mib") for r in rounds),
        "container_peak_mib": _max(r.get("container_peak_mib") for r in rounds),
        "container_anon_mib": _max(r.get("container_anon_mib") for r in rounds),
        "host_wall_s": _median(r.get("host_wall_s") for r in timed),
        "harness_overhead_s": _median(r.get("harness_overhead_s") for r in timed),
        "container_overhead_s": _median(r.get("container_overhead_s") for r in timed),
        "wer": gate_acc.get("wer"), "cer": gate_acc.get("cer"), "wer_vs_baseline": gate_acc.get("wer_vs_baseline"),
        "wer_whisper": whisper_acc.get("wer"), "cer_whisper": whisper_acc.get("cer"),
        "error": record.get("error") or "",
        "convention": record.get("convention"),
        "decoding": record.get("decoding") or {},
        "decoding_applied": {**applied, "convention": record.get("convention")} if applied else {},
        "decoding_key": json.dumps(record.get("decoding") or {}, sort_keys=True),
        "notes": "; ".join(record.get("notes") or []),
        "host": record.get("host") or {},
    }
