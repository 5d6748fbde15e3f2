"""cell.json: one cell's rounds reduced to what the report needs, written beside the raw round folders.

The raw folders stay local; cell.json is small and tracked, so `python -m harness report` on a clone
rebuilds exactly the same tables from it. A cell with round folders gets its cell.json rebuilt; one
without keeps the cell.json it has.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from engines.results import Status

from ..files import read_json, read_jsonl, write_atomic
from ..layout import (
    CELL_FILE,
    METRICS_FILE,
    PER_FILE_JSON,
    ROWS_FILE,
    RUN_FILE,
    SHAPE_RE,
    SUMMARY_FILE,
    cell_dirs,
    round_dirs,
)
from ..scoring.normalizers import GATE_NORMALIZER

SCHEMA = 2


def _file_rows(run_dir: Path) -> list[dict]:
    rows = read_json(run_dir / PER_FILE_JSON)
    return rows if isinstance(rows, list) else read_jsonl(run_dir / ROWS_FILE)


def _round_status(run: dict, summary: dict) -> str:
    if run.get("status"):
        return run["status"]
    # engine files but no run.json: the harness died mid-run
    return str(Status.INCOMPLETE) if summary.get("status") in (None, Status.RUNNING) else summary["status"]


def _mib(value) -> float | None:
    return value / 2**20 if value else None


def _accuracy(metrics: dict) -> dict:
    out = {"gate_normalizer": metrics.get("gate_normalizer", GATE_NORMALIZER), "n_missing": metrics.get("n_missing"),
           "baseline_run": metrics.get("baseline_run")}
    per_norm = metrics.get("normalizers") or {GATE_NORMALIZER: {"vs_reference": metrics.get("vs_reference"),
                                                                "vs_baseline": metrics.get("vs_baseline")}}
    for name, entry in per_norm.items():
        ref, base = entry.get("vs_reference") or {}, entry.get("vs_baseline") or {}
        out[name] = {"wer": ref.get("wer"), "cer": ref.get("cer"), "wer_ci95": ref.get("wer_ci95"),
                     "ref_words": ref.get("ref_words"), "wer_vs_baseline": base.get("wer")}
    return out


def build_cell_record(cell_dir: Path, scored: bool = True) -> dict:
    shape = SHAPE_RE.fullmatch(cell_dir.parent.name)
    record: dict = {"schema": SCHEMA, "sut": cell_dir.parent.parent.name, "shape": cell_dir.parent.name,
                    "cell": cell_dir.name, "rounds": []}
    files: dict[str, float | None] = {}
    per_round_times = []
    for run_dir in round_dirs(cell_dir):
        run = read_json(run_dir / RUN_FILE) or {}
        summary = read_json(run_dir / SUMMARY_FILE) or {}
        status = _round_status(run, summary)
        rows = _file_rows(run_dir)
        times = {}
        for row in rows:
            if row.get("audio_s") is not None:
                files.setdefault(row["file"], row["audio_s"])
            if not row.get("error") and row.get("end_to_end_s") is not None and row["file"] not in times:
                times[row["file"]] = row["end_to_end_s"]
        per_round_times.append(times)
        e2e = summary.get("end_to_end_s") or {}
        quiet = run.get("quiet") or {}
        record["rounds"].append({
            "round": run.get("round") or int(run_dir.name.split("-")[1]), "status": status,
            "error": run.get("error") or summary.get("error") or "",
            "rtf": summary.get("rtf"), "processing_s": summary.get("total_processing_s"),
            "total_audio_s": summary.get("total_audio_s"), "n_files": summary.get("n_files"),
            "n_ok": summary.get("n_ok"), "failures": summary.get("failures"),
            "p50_s": e2e.get("p50"), "p95_s": e2e.get("p95"), "mean_s": e2e.get("mean"),
            "load_s": summary.get("model_load_s"),
            "peak_rss_mib": (run.get("time_v") or {}).get("max_rss_mb") or summary.get("peak_rss_mb"),
            "container_peak_mib": _mib(run.get("cgroup_peak_bytes")),
            "container_anon_mib": _mib(run.get("cgroup_anon_bytes")),
            "page_cache_evicted": run.get("page_cache_evicted"),
            "host_wall_s": run.get("host_wall_s"), "harness_overhead_s": run.get("harness_overhead_s"),
            "container_overhead_s": run.get("container_overhead_s"),
            "busy_share": quiet.get("busy_share"), "foreign_busy_share": run.get("foreign_busy_share"),
            # busy before the run, or something else took a share of its CPUs while it ran
            "loaded": bool(quiet.get("loaded")) or (run.get("foreign_busy_share") or 0) > quiet.get("threshold", 1),
        })
        if not record.get("engine"):
            record.update({
                "engine": run.get("engine") or summary.get("engine"), "model": run.get("model") or summary.get("model"),
                "variant": run.get("variant") or summary.get("variant"),
                "precision": summary.get("precision") or run.get("variant"),
                "cores": run.get("cores") or (int(shape.group(1)) if shape else summary.get("threads")),
                "threads": summary.get("threads") or run.get("threads"),
                "memory_gb": run.get("memory_gb") or (float(shape.group(2)) if shape else None),
                "cpuset": run.get("cpuset") or ",".join(map(str, summary.get("cpuset", []))),
                "host": run.get("host"), "corpus_id": (run.get("host") or {}).get("corpus_id"),
            })
        if summary.get("decoding") and not record.get("decoding"):
            record.update({"convention": summary.get("convention"), "decoding": summary.get("decoding"),
                           "decoding_applied": summary.get("decoding_applied") or summary.get("decoding"),
                           "notes": summary.get("notes") or []})
        if scored and "accuracy" not in record and status in (Status.OK, Status.PARTIAL):
            metrics = read_json(run_dir / METRICS_FILE)
            if metrics:
                record["accuracy"] = {"round": record["rounds"][-1]["round"], **_accuracy(metrics)}
    names = sorted(files)
    record["files"] = names
    record["audio_s"] = [files[n] for n in names]
    record["times"] = [[t.get(n) for n in names] for t in per_round_times]
    statuses = [r["status"] for r in record["rounds"]]
    bad = [s for s in statuses if s != Status.OK]
    record["status"] = str(Status.OK) if statuses and not bad else (bad[0] if bad else "unknown")
    record["error"] = next((r["error"] for r in record["rounds"] if r["error"]), "")
    return record


def timing_matrix(record: dict, files: list[str] | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(rounds x files) end-to-end seconds over the cell's ok rounds and the files every one of them
    transcribed (or the given files), with their audio seconds."""
    ok = [i for i, r in enumerate(record.get("rounds", [])) if r["status"] == Status.OK]
    names = record.get("files") or []
    times = record.get("times") or []
    wanted = files if files is not None else names
    index = {n: i for i, n in enumerate(names)}
    keep = [n for n in wanted if n in index and ok and all(times[r][index[n]] is not None for r in ok)]
    if not keep:
        return np.zeros((0, 0)), np.zeros(0), []
    matrix = np.array([[times[r][index[n]] for n in keep] for r in ok], dtype=np.float64)
    audio = np.array([record["audio_s"][index[n]] for n in keep], dtype=np.float64)
    return matrix, audio, keep


def common_timings(a: dict, b: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two cells' (rounds x files) times over the files both transcribed in every ok round, and their audio."""
    _, _, files_a = timing_matrix(a)
    times_b, audio, common = timing_matrix(b, files_a)
    times_a, _, _ = timing_matrix(a, common)
    return times_a, times_b, audio


def collect_cells(results: Path) -> list[dict]:
    """Every cell's record: rebuilt (and cell.json rewritten when it changed) where round folders exist,
    read from cell.json where they do not (a clone)."""
    out = []
    for cell_dir in cell_dirs(results):
        if round_dirs(cell_dir):
            record = build_cell_record(cell_dir)
            write_atomic(cell_dir / CELL_FILE, json.dumps(record, indent=1, sort_keys=True) + "\n",
                         only_if_changed=True)
        else:
            record = read_json(cell_dir / CELL_FILE)
            if not record:
                continue
        out.append(record)
    return out
