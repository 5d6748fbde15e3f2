"""cell.json: one cell's rounds reduced to what the answer needs, written beside the raw round folders.

The raw folders stay local; cell.json is small and tracked, so `python -m harness report` on a clone
rebuilds exactly the same tables from it. A cell with round folders gets its cell.json rebuilt; one
without keeps the cell.json it has.

Every round keeps its own accuracy (transcripts can change from run to run) and a digest of its
transcripts; a round that ran while its CPUs were busy is marked `loaded` and left out of the statistics
(the run loop re-runs it once; the loaded attempt stays beside it as `round-<k>-loaded`).
"""
from __future__ import annotations

import hashlib
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
from .measurements import round_values

SCHEMA = 3
FINISHED = (Status.OK, Status.PARTIAL)
# A round that stopped because the harness was stopped says nothing about the cell.
NOT_COUNTED = (Status.INTERRUPTED,)


def _file_rows(run_dir: Path) -> list[dict]:
    rows = read_json(run_dir / PER_FILE_JSON)
    return rows if isinstance(rows, list) else read_jsonl(run_dir / ROWS_FILE)


def _round_status(run: dict, summary: dict) -> str:
    if run.get("status"):
        return run["status"]
    # engine files but no run.json: the harness died mid-run
    return str(Status.INCOMPLETE) if summary.get("status") in (None, Status.RUNNING) else summary["status"]


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


def _mean(values):
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def pooled_accuracy(per_round: list[dict]) -> dict:
    """Every scored round's accuracy in one: each figure the mean over rounds, with its range."""
    if not per_round:
        return {}
    out = {k: per_round[0].get(k) for k in ("gate_normalizer", "n_missing", "baseline_run")}
    out["rounds"] = [a["round"] for a in per_round]
    names = {n for a in per_round for n, v in a.items() if isinstance(v, dict)}
    for name in names:
        entries = [a[name] for a in per_round if isinstance(a.get(name), dict)]
        wers = [e.get("wer") for e in entries if e.get("wer") is not None]
        out[name] = {k: _mean(e.get(k) for e in entries) for k in ("wer", "cer", "wer_vs_baseline")}
        out[name]["ref_words"] = entries[0].get("ref_words")
        out[name]["wer_range"] = [min(wers), max(wers)] if wers else None
    return out


def _transcript_digest(rows: list[dict]) -> str | None:
    texts = {}
    for row in rows:
        if not row.get("error") and row.get("file") not in texts and row.get("text") is not None:
            texts[row["file"]] = row["text"]
    if not texts:
        return None
    return hashlib.sha256(json.dumps(texts, sort_keys=True).encode()).hexdigest()[:12]


def _round_entry(run_dir: Path, run: dict, summary: dict, status: str, rows: list[dict]) -> dict:
    quiet = run.get("quiet") or {}
    return {
        "round": run.get("round") or int(run_dir.name.split("-")[1]), "status": status,
        "error": run.get("error") or summary.get("error") or "",
        "rtf": summary.get("rtf"), "n_files": summary.get("n_files"),
        "n_ok": summary.get("n_ok"), "failures": summary.get("failures"),
        **round_values(summary, run),
        "page_cache_evicted": run.get("page_cache_evicted"),
        "busy_share": quiet.get("busy_share"), "foreign_busy_share": run.get("foreign_busy_share"),
        # busy before the run, or something else took a share of its CPUs while it ran
        "loaded": bool(quiet.get("loaded")) or (run.get("foreign_busy_share") or 0) > quiet.get("threshold", 1),
        "transcripts": _transcript_digest(rows),
        "started_at": run.get("started_at"), "commit": run.get("commit"), "seed": run.get("seed"),
        "run_id": run.get("run_id"),
    }


def build_cell_record(cell_dir: Path, scored: bool = True) -> dict:
    shape = SHAPE_RE.fullmatch(cell_dir.parent.name)
    record: dict = {"schema": SCHEMA, "sut": cell_dir.parent.parent.name, "shape": cell_dir.parent.name,
                    "cell": cell_dir.name, "rounds": []}
    files: dict[str, float | None] = {}
    per_round_times = []
    per_round_accuracy = []
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
        entry = _round_entry(run_dir, run, summary, status, rows)
        record["rounds"].append(entry)
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
                "replica": run.get("replica") or 0,
            })
        if summary.get("decoding") and not record.get("decoding"):
            record.update({"convention": summary.get("convention"), "decoding": summary.get("decoding"),
                           "decoding_applied": summary.get("decoding_applied") or summary.get("decoding"),
                           "notes": summary.get("notes") or [],
                           "versions": summary.get("versions") or summary.get("library_versions") or {},
                           "image_id": run.get("image_id")})
        if scored and status in FINISHED:
            metrics = read_json(run_dir / METRICS_FILE)
            if metrics:
                acc = {"round": entry["round"], **_accuracy(metrics)}
                per_round_accuracy.append(acc)
                entry["wer"] = (acc.get(GATE_NORMALIZER) or {}).get("wer")
    record["loaded_attempts"] = [_loaded_attempt(p) for p in sorted(cell_dir.glob("round-*-loaded"))]
    if per_round_accuracy:
        record["accuracy"] = pooled_accuracy(per_round_accuracy)
    names = sorted(files)
    record["files"] = names
    record["audio_s"] = [files[n] for n in names]
    record["times"] = [[t.get(n) for n in names] for t in per_round_times]
    record["status"], record["error"] = cell_status(record["rounds"])
    return record


def _loaded_attempt(run_dir: Path) -> dict:
    run = read_json(run_dir / RUN_FILE) or {}
    summary = read_json(run_dir / SUMMARY_FILE) or {}
    return {"round": run.get("round"), "rtf": summary.get("rtf"), "busy_share": (run.get("quiet") or {}).get(
        "busy_share"), "foreign_busy_share": run.get("foreign_busy_share")}


def cell_status(rounds: list[dict]) -> tuple[str, str]:
    """ok when every counted round is ok; else the first other status. A round the harness was stopped in
    does not count, so an interrupted extra round never drops an otherwise complete cell."""
    counted = [r for r in rounds if r["status"] not in NOT_COUNTED] or rounds
    bad = [r for r in counted if r["status"] != Status.OK]
    status = str(Status.OK) if counted and not bad else (bad[0]["status"] if bad else "unknown")
    error = next((r["error"] for r in bad if r["error"]), "") or next((r["error"] for r in rounds if r["error"]), "")
    return status, error


def run_rtfs(record: dict) -> dict[int, float]:
    """round id -> corpus RTF of each ok round that did not run under load: the runs the statistics use."""
    return {r["round"]: r["rtf"] for r in record.get("rounds", [])
            if r["status"] == Status.OK and r.get("rtf") and not r.get("loaded")}


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
