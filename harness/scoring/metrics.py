"""metrics.json for one run folder: WER/CER against the references and against the baseline engine,
under every normaliser (harness/scoring/normalizers.py).

The top-level `vs_reference` and `vs_baseline` are the gate normaliser's (the project's own); the
`normalizers` map holds each normaliser's figures. A file the run did not transcribe (an error row,
or a run cut short) counts as all deletions, so a partial run never looks more accurate than a
complete one.
"""
from __future__ import annotations

import json
import os
from importlib import metadata
from pathlib import Path

from ..audio.corpus import Utterance
from ..files import read_jsonl, write_json
from ..layout import METRICS_FILE, PER_FILE_JSON, ROWS_FILE
from . import normalizer
from .normalizers import GATE_NORMALIZER, all_normalizers
from .wer import score_pairs


def read_transcripts(run_dir: Path) -> dict[str, str]:
    """file -> text of the first successful repeat of each file."""
    path = run_dir / PER_FILE_JSON
    if path.is_file():
        rows = json.loads(path.read_text())
    else:  # a run cut short has only the rows it appended
        rows = read_jsonl(run_dir / ROWS_FILE)
    out: dict[str, str] = {}
    for row in rows:
        if not row.get("error") and row["file"] not in out:
            out[row["file"]] = row["text"]
    return out


def compute_metrics(run_dir: Path, corpus: list[Utterance], baseline_dir: Path | None,
                    baseline_name: str) -> dict:
    hyps = read_transcripts(run_dir)
    # Every referenced file counts: one that was not transcribed is an empty hypothesis.
    with_ref = [(u.key, u.reference, hyps.get(u.key, "")) for u in corpus if u.reference]
    base = None
    if baseline_dir is not None and baseline_dir.resolve() != run_dir.resolve():
        base = read_transcripts(baseline_dir)
    by_normalizer = {}
    for norm in all_normalizers():
        entry = {"version": norm.version, "vs_reference": score_pairs(with_ref, norm.normalize), "vs_baseline": None}
        if base is not None:
            pairs = [(k, base[k], hyps.get(k, "")) for k in sorted(base) if norm.normalize(base[k])]
            entry["vs_baseline"] = score_pairs(pairs, norm.normalize)
        elif baseline_dir is not None:
            entry["vs_baseline"] = {"n_files": len(hyps), "wer": 0.0, "cer": 0.0, "note": "this run is the baseline"}
        by_normalizer[norm.name] = entry
    gate = by_normalizer[GATE_NORMALIZER]
    return {
        "normalizer": {"name": normalizer.NAME, "version": normalizer.VERSION},
        "gate_normalizer": GATE_NORMALIZER,
        "normalizers": {name: {k: _brief(v) if k != "version" else v for k, v in e.items()}
                        for name, e in by_normalizer.items()},
        "jiwer": metadata.version("jiwer"),
        "n_corpus_files": len(corpus),
        "n_transcribed": sum(1 for u in corpus if u.key in hyps),
        "n_missing": sum(1 for u in corpus if u.reference and u.key not in hyps),
        "n_without_reference": sum(1 for u in corpus if not u.reference),
        "vs_reference": gate["vs_reference"],
        "baseline": baseline_name,
        # relative to this run's folder, so a clone's cell.json names the same round
        "baseline_run": os.path.relpath(baseline_dir, run_dir) if baseline_dir is not None else None,
        "vs_baseline": gate["vs_baseline"],
    }


def _brief(scores: dict | None) -> dict | None:
    """A normaliser's figures without the per-file rows (the gate normaliser's top-level copy keeps them)."""
    return None if scores is None else {k: v for k, v in scores.items() if k != "per_file"}


def write_metrics(run_dir: Path, metrics: dict) -> None:
    write_json(run_dir / METRICS_FILE, metrics)
