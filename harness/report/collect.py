"""One row per result cell, read from `results/` alone, plus what only a comparison across rows gives:
speed-up and parallel efficiency across core counts, audio-hours per core-hour, the accuracy gate and
the decoding settings that differ from the run's common ones."""
from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

from ..cli_run import BASELINE
from ..files import read_json

SHAPE_RE = re.compile(r"container_(\d+)c([\d.]+)g")
# An engine fails the gate when its word accuracy (1 - WER) is below this share of the baseline's.
ACCURACY_GATE = 0.99
SKIP_DIRS = {"backups", "logs", "plots"}


def cell_dirs(results: Path) -> list[Path]:
    """results/<SUT>/container_<c>c<m>g/<cell>/ holding a run.json or an engine summary; backups excluded."""
    found = set()
    for marker in ("run.json", "inference_summary.json"):
        for path in results.glob(f"*/container_*/*/{marker}"):
            if not SKIP_DIRS & set(path.relative_to(results).parts):
                found.add(path.parent)
    return sorted(found)


def read_row(cell_dir: Path) -> dict:
    run = read_json(cell_dir / "run.json") or {}
    summary = read_json(cell_dir / "inference_summary.json") or {}
    metrics = read_json(cell_dir / "metrics.json") or {}
    shape = SHAPE_RE.fullmatch(cell_dir.parent.name)
    cores = run.get("cores") or (int(shape.group(1)) if shape else summary.get("threads"))
    name = cell_dir.name
    engine = run.get("engine") or summary.get("engine") or name.split("-")[0]
    status = run.get("status") or ("incomplete" if summary.get("status") == "running" else summary.get("status"))
    e2e = summary.get("end_to_end_s") or {}
    time_v = run.get("time_v") or {}
    finished = status in ("ok", "partial")  # WER of a run cut short would describe a subset of the corpus
    ref = (metrics.get("vs_reference") or {}) if finished else {}
    base = (metrics.get("vs_baseline") or {}) if finished else {}
    cgroup = run.get("cgroup_peak_bytes")
    return {
        "sut": cell_dir.parent.parent.name, "shape": cell_dir.parent.name, "cell": name, "engine": engine,
        "model": run.get("model") or summary.get("model"), "variant": run.get("variant") or summary.get("variant"),
        "precision": summary.get("precision") or run.get("variant"), "cores": cores,
        "memory_gb": run.get("memory_gb") or (float(shape.group(2)) if shape else None),
        "threads": summary.get("threads") or run.get("threads"),
        "cpuset": run.get("cpuset") or ",".join(map(str, summary.get("cpuset", []))),
        "status": status or "unknown", "n_files": summary.get("n_files"), "n_ok": summary.get("n_ok"),
        "failures": summary.get("failures"),
        "p50_s": e2e.get("p50"), "p95_s": e2e.get("p95"), "mean_s": e2e.get("mean"),
        "total_audio_s": summary.get("total_audio_s"), "processing_s": summary.get("total_processing_s"),
        "rtf": summary.get("rtf"), "rtfx": summary.get("rtfx"), "load_s": summary.get("model_load_s"),
        "peak_rss_mb": time_v.get("max_rss_mb") or summary.get("peak_rss_mb"),
        "container_peak_mb": cgroup / 2**20 if cgroup else None,
        "host_wall_s": run.get("host_wall_s"), "harness_overhead_s": run.get("harness_overhead_s"),
        "container_overhead_s": run.get("container_overhead_s"),
        "wer": ref.get("wer"), "cer": ref.get("cer"), "wer_vs_baseline": base.get("wer"),
        "error": run.get("error") or summary.get("error") or "",
        "_decoding": {**(summary.get("decoding") or {}), "convention": summary.get("convention")}
        if summary.get("decoding") else None,
        "_path": str(cell_dir),
    }


def _ok(row: dict) -> bool:
    return row["status"] in ("ok", "partial") and row["processing_s"]


def add_scaling(rows: list[dict]) -> None:
    """Speed-up and efficiency against the same engine variant's fewest-cores run in the same SUT."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        if _ok(row) and row["cores"]:
            groups.setdefault((row["sut"], row["cell"], row["memory_gb"]), []).append(row)
    for row in rows:
        row["speedup"] = row["efficiency"] = None
        row["audio_h_per_core_h"] = row["rtfx"] / row["cores"] if _ok(row) and row["rtfx"] and row["cores"] else None
    for group in groups.values():
        ref = min(group, key=lambda r: r["cores"])
        for row in group:
            row["speedup"] = ref["processing_s"] / row["processing_s"]
            row["efficiency"] = row["speedup"] / (row["cores"] / ref["cores"])


def add_accuracy_gate(rows: list[dict], baseline: str = BASELINE) -> None:
    """'pass' or 'FAIL' against the baseline engine's word accuracy in the same SUT, shape and model."""
    base = {(r["sut"], r["shape"], r["model"]): r for r in rows if r["engine"] == baseline and _ok(r)}
    for row in rows:
        row["accuracy_gate"] = None
        if not _ok(row):
            continue
        ref = base.get((row["sut"], row["shape"], row["model"]))
        if ref is row:
            row["accuracy_gate"] = "baseline"
        elif ref is not None and row["wer"] is not None and ref["wer"] is not None:
            row["accuracy_gate"] = "pass" if 1 - row["wer"] >= ACCURACY_GATE * (1 - ref["wer"]) else "FAIL"
        elif row["wer_vs_baseline"] is not None:  # no references: agreement with the baseline's words
            row["accuracy_gate"] = "pass" if 1 - row["wer_vs_baseline"] >= ACCURACY_GATE else "FAIL"


def add_decoding_diff(rows: list[dict]) -> None:
    """Per SUT, the most common decoding settings are the run's; each row lists where it differs."""
    by_sut: dict[str, list[dict]] = {}
    for row in rows:
        by_sut.setdefault(row["sut"], []).append(row)
    for group in by_sut.values():
        settings = [row["_decoding"] for row in group if row["_decoding"]]
        if not settings:
            common = {}
        else:
            keys = {k for s in settings for k in s}
            common = {k: Counter(json.dumps(s.get(k)) for s in settings).most_common(1)[0][0] for k in sorted(keys)}
        for row in group:
            dec = row["_decoding"] or {}
            row["decoding_diff"] = "; ".join(f"{k}={dec.get(k)}" for k in sorted(dec)
                                             if json.dumps(dec.get(k)) != common.get(k))
            row["_common_decoding"] = {k: json.loads(v) for k, v in common.items()}


def collect(results: Path) -> list[dict]:
    rows = [read_row(d) for d in cell_dirs(results)]
    rows.sort(key=lambda r: (r["sut"], r["cores"] or 0, r["memory_gb"] or 0, r["engine"], r["variant"] or ""))
    add_scaling(rows)
    add_accuracy_gate(rows)
    add_decoding_diff(rows)
    return rows
