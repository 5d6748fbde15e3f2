"""The scoring stage: metrics.json beside every round folder, against references and the baseline.

The baseline is the baseline engine's complete run (status ok, never partial or failed) of the same
model, corpus and requested decoding: in the same container shape when there is one, else in another
shape of the same SUT (transcripts do not depend on the core count).
"""
from __future__ import annotations

from pathlib import Path

from engines.registry import BASELINE_ENGINE, SPECS
from engines.results import Status

from ..files import read_json
from ..layout import RUN_FILE, SUMMARY_FILE, round_dirs, run_dirs


def _complete(run_dir: Path) -> bool:
    run = read_json(run_dir / RUN_FILE)
    summary = read_json(run_dir / SUMMARY_FILE) or {}
    status = (run or {}).get("status") or summary.get("status")
    return status == Status.OK


def baseline_for(run_dir: Path, baseline: str = BASELINE_ENGINE) -> Path | None:
    """The baseline's complete round for run_dir: same model, corpus and requested decoding; looked for in
    the run's own shape, then its folder's other shapes, then (for a run in an area of a SUT, such as
    results/<SUT>/discovery/) the SUT's own shapes, so a baseline run once is reused, not re-run."""
    summary = read_json(run_dir / SUMMARY_FILE) or {}
    if baseline not in SPECS:
        return None
    cell_name = f"{baseline}-{summary.get('model')}-{SPECS[baseline].default_variant}"
    shape_dir = run_dir.parent.parent
    candidates = [shape_dir / cell_name] + sorted(p / cell_name for p in shape_dir.parent.glob("container_*")
                                                  if p != shape_dir)
    candidates += sorted(p / cell_name for p in shape_dir.parent.parent.glob("container_*"))
    for candidate in candidates:
        for round_dir in round_dirs(candidate):
            if _complete(round_dir) and same_inputs(round_dir, run_dir):
                return round_dir
    return None


def same_inputs(a: Path, b: Path) -> bool:
    """Two rounds transcribed the same corpus with the same requested decoding (where both recorded it);
    the batch size does not count: a batched run is scored against the same baseline as its batch-1 run."""
    corpus = [((read_json(d / RUN_FILE) or {}).get("host") or {}).get("corpus_id") for d in (a, b)]
    decoding = [{k: v for k, v in ((read_json(d / SUMMARY_FILE) or {}).get("decoding") or {}).items()
                 if k != "batch_size"} or None for d in (a, b)]
    return all(x[0] == x[1] or None in x for x in (corpus, decoding))


def score_runs(run_dirs: list[Path], audio: Path, baseline: str = BASELINE_ENGINE, quiet: bool = True) -> int:
    """metrics.json for each of the given round folders; returns how many were scored."""
    from ..audio.corpus import load_corpus
    from .metrics import compute_metrics, write_metrics

    corpus = load_corpus(audio)
    for run_dir in run_dirs:
        metrics = compute_metrics(run_dir, corpus, baseline_for(run_dir, baseline), baseline)
        write_metrics(run_dir, metrics)
        if not quiet:
            ref = metrics["vs_reference"]
            base = metrics["vs_baseline"] or {}
            print(f"{run_dir}: WER {_pct(ref.get('wer'))} CER {_pct(ref.get('cer'))} "
                  f"vs {baseline}: WER {_pct(base.get('wer'))}")
    return len(run_dirs)


def score_results(results: Path, audio: Path, baseline: str = BASELINE_ENGINE, quiet: bool = False) -> int:
    return score_runs(run_dirs(results), audio, baseline, quiet)


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"
