"""metrics.json for one run folder: WER/CER against the references and against the baseline engine."""
from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

from ..audio.corpus import Utterance
from ..files import write_json
from . import normalizer
from .wer import score_pairs

METRICS_FILE = "metrics.json"


def read_transcripts(run_dir: Path) -> dict[str, str]:
    """file -> text of the first successful repeat of each file."""
    path = run_dir / "inference_per_file.json"
    if not path.is_file():
        return {}
    out: dict[str, str] = {}
    for row in json.loads(path.read_text()):
        if not row.get("error") and row["file"] not in out:
            out[row["file"]] = row["text"]
    return out


def compute_metrics(run_dir: Path, corpus: list[Utterance], baseline_dir: Path | None,
                    baseline_name: str) -> dict:
    hyps = read_transcripts(run_dir)
    with_ref = [(u.key, u.reference, hyps[u.key]) for u in corpus if u.reference and u.key in hyps]
    metrics = {
        "normalizer": {"name": normalizer.NAME, "version": normalizer.VERSION},
        "jiwer": metadata.version("jiwer"),
        "n_corpus_files": len(corpus),
        "n_transcribed": sum(1 for u in corpus if u.key in hyps),
        "n_without_reference": sum(1 for u in corpus if not u.reference),
        "vs_reference": score_pairs(with_ref),
        "baseline": baseline_name,
        "vs_baseline": None,
    }
    if baseline_dir is not None and baseline_dir.resolve() != run_dir.resolve():
        base = read_transcripts(baseline_dir)
        pairs = [(k, base[k], hyps[k]) for k in sorted(hyps) if k in base and normalizer.normalize(base[k])]
        metrics["vs_baseline"] = score_pairs(pairs)
    elif baseline_dir is not None:
        metrics["vs_baseline"] = {"n_files": len(hyps), "wer": 0.0, "cer": 0.0, "note": "this run is the baseline"}
    return metrics


def write_metrics(run_dir: Path, metrics: dict) -> None:
    write_json(run_dir / METRICS_FILE, metrics)
