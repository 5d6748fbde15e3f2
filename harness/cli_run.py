"""Subcommands `audio`, `score`, `report`: corpus synthesis, accuracy scoring and the report."""
from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_AUDIO = ROOT / "audio" / "synth"
DEFAULT_RESULTS = ROOT / "results"
BASELINE = "openai-whisper"


def _audio(args) -> None:
    from .audio.synth import synth_corpus

    manifest = synth_corpus(Path(args.out))
    print(f"{args.out}: {len(manifest['files'])} files, {manifest['total_s'] / 60:.1f} min of audio")


def run_dirs(results: Path) -> list[Path]:
    return sorted(p.parent for p in results.rglob("inference_summary.json") if "backups" not in p.parts)


def baseline_for(run_dir: Path, baseline: str) -> Path | None:
    """The baseline engine's run of the same model in the same container shape."""
    summary = json.loads((run_dir / "inference_summary.json").read_text())
    candidates = sorted(run_dir.parent.glob(f"{baseline}-{summary['model']}-*"))
    return candidates[0] if candidates else None


def score_results(results: Path, audio: Path, baseline: str = BASELINE) -> int:
    from .audio.corpus import load_corpus
    from .scoring.metrics import compute_metrics, write_metrics

    corpus = load_corpus(audio)
    n = 0
    for run_dir in run_dirs(results):
        metrics = compute_metrics(run_dir, corpus, baseline_for(run_dir, baseline), baseline)
        write_metrics(run_dir, metrics)
        ref = metrics["vs_reference"]
        base = metrics["vs_baseline"] or {}
        print(f"{run_dir}: WER {_pct(ref.get('wer'))} CER {_pct(ref.get('cer'))} "
              f"vs {baseline}: WER {_pct(base.get('wer'))}")
        n += 1
    return n


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def _score(args) -> None:
    if score_results(Path(args.results), Path(args.audio_dir), args.baseline) == 0:
        print(f"no result folders under {args.results}")


def _report(args) -> None:
    from .report import write_report

    write_report(Path(args.results), Path(args.results_md) if args.results_md else None)


def add_subcommands(sub) -> None:
    report = sub.add_parser("report", help="tables, plots and RESULTS.md from results/ alone")
    report.add_argument("--results", default=str(DEFAULT_RESULTS))
    report.add_argument("--results-md", help="file to update (default RESULTS.md at the repository root)")
    report.set_defaults(func=_report)

    audio = sub.add_parser("audio", help="synthesize the default corpus")
    audio.add_argument("action", choices=["synth"])
    audio.add_argument("--out", default=str(DEFAULT_AUDIO))
    audio.set_defaults(func=_audio)

    score = sub.add_parser("score", help="WER/CER of every result folder against references and baseline")
    score.add_argument("--results", default=str(DEFAULT_RESULTS))
    score.add_argument("--audio-dir", default=str(DEFAULT_AUDIO))
    score.add_argument("--baseline", default=BASELINE)
    score.set_defaults(func=_score)
