"""Run every engine on one model, same threads and corpus, and print speed ratios, memory and WER.

    python scripts/bench_engines.py [--model base] [--threads 2] [--scaling-from 1] [--audio-dir audio/synth]
        [--repeats 1] [--batch-size 8] [--ort-builds q8-b64,int8-dynamic] [--engines ort:int8,openvino:int8]

Each engine runs in its own child process, the runner's command line as the harness's containers launch it
(engines/command.py), pinned with taskset to as many CPUs as threads, one after another, so peak RSS is each
engine's own. Processing time is the sum of end-to-end times over the corpus (model load apart, warm-up not
counted), shown as a ratio to faster-whisper float32.
Not a test: it prints figures, then every target of the ort engine as a ratio with met or MISSED: its best
build within the accuracy gate against the fastest other engine within it, fp32 against faster-whisper and
OpenVINO fp32, peak RSS against faster-whisper at equal precision, with --scaling-from the speed-up from
that many threads to --threads against the best other engine's, and with --batch-size the throughput of
batched runs against faster-whisper's batched pipeline.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engines.command import runner_arguments  # noqa: E402
from engines.cpus import pinned  # noqa: E402
from engines.registry import BASELINE_ENGINE, SPECS  # noqa: E402
from engines.results import PER_FILE_JSON, SUMMARY_FILE  # noqa: E402
from harness.evidence.gate import ACCURACY_GATE  # noqa: E402

# Outside its image whisper-cpp-native is whisper-cpp's bundled build: the same engine twice.
NOT_LOCAL = {"whisper-cpp-native"}
RUNS = [(name, v) for name, s in SPECS.items() if name not in NOT_LOCAL for v in s.compared]
BATCHED = (("ort", "fp32"), ("ort", "int8"), ("faster-whisper", "int8"))
# The ort engine's targets, as ratios: time of its best build within the gate to the fastest other engine
# within it; ort fp32 time to faster-whisper fp32's and to OpenVINO fp32's; peak RSS to faster-whisper's at
# equal precision; its 1->N speed-up to the best other engine's; batched throughput to faster-whisper's.
TARGET_FASTEST, TARGET_FP32, TARGET_FP32_OPENVINO, TARGET_RSS, TARGET_SCALING, TARGET_BATCH = \
    0.90, 0.70, 1.0, 1.0, 1.0, 1.3


@dataclass
class Run:
    """One engine variant's results, read from its folder."""
    summary: dict
    wer: float
    texts: dict[str, str]     # file -> transcript
    out: Path

    @property
    def seconds(self) -> float:
        return self.summary["total_processing_s"]

    @property
    def rss_mb(self) -> float:
        return self.summary["peak_rss_mb"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="base")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--scaling-from", type=int, default=0, help="also run every engine at this many threads, "
                   "for the speed-up target (e.g. 1)")
    p.add_argument("--audio-dir", default=str(ROOT / "audio" / "synth"))
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--engines", help="comma-separated engine:precision pairs (default: all)")
    p.add_argument("--batch-size", type=int, default=1, help="also run ort fp32/int8 and faster-whisper int8 "
                   "with this many files at a time, for the throughput target")
    p.add_argument("--ort-builds", default="", help="comma-separated discover builds to run as ort precisions")
    args = p.parse_args()

    from harness.audio.corpus import load_corpus

    runs = [tuple(r.split(":")) + (1,) for r in args.engines.split(",")] if args.engines else \
        [(e, v, 1) for e, v in RUNS]
    runs += [("ort", b, 1) for b in args.ort_builds.split(",") if b]
    if args.batch_size > 1:
        runs += [(e, v, args.batch_size) for e, v in BATCHED]
    corpus = load_corpus(args.audio_dir)
    out_root = Path(tempfile.mkdtemp(prefix="bench-"))
    counts = [args.threads] + ([args.scaling_from] if args.scaling_from else [])
    by_threads = run_all(runs, counts, ROOT / "models" / f"whisper-{args.model}", args, corpus, out_root)
    results, fewer = by_threads[args.threads], by_threads.get(args.scaling_from, {})
    print_table(results, corpus, args, out_root)
    print_targets(results, args.batch_size, fewer, (args.scaling_from, args.threads))
    return 0


def run_all(runs: list[tuple], counts: list[int], model_dir: Path, args, corpus, out_root: Path) -> dict:
    """threads -> (engine, precision, batch) -> Run. Each run is its own process; an engine's thread counts
    run back to back, so the speed-up shares the machine's drift."""
    results = {n: {} for n in counts}
    for engine, precision, batch in runs:
        for threads in counts if batch == 1 else counts[:1]:
            out = out_root / f"{engine}-{precision}-b{batch}-t{threads}"
            cmd = [*pinned(threads), sys.executable, "-m", "engines", *runner_arguments(
                engine, model_dir=model_dir, audio_dir=args.audio_dir, out=out, threads=threads,
                precision=precision, warmup=1, repeats=args.repeats, batch_size=batch)]
            proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
            if proc.returncode != 0:
                print(f"{engine} {precision} ({threads} threads): failed: {proc.stderr.strip().splitlines()[-1:]}")
                continue
            results[threads][(engine, precision, batch)] = read_run(out, corpus)
    return results


def read_run(out: Path, corpus) -> Run:
    from harness.scoring.metrics import compute_metrics

    rows = json.loads((out / PER_FILE_JSON).read_text())
    return Run(json.loads((out / SUMMARY_FILE).read_text()), compute_metrics(out, corpus, None, "")["vs_reference"]
               ["wer"], {r["file"]: r["text"] for r in rows}, out)


def print_table(results: dict, corpus, args, out_root: Path) -> None:
    """One line per run: time, its ratio to faster-whisper fp32 and int8, RTFx, load, peak RSS, WER and the
    word-level difference from the reference implementation's transcripts (the parity figure)."""
    from harness.scoring.metrics import compute_metrics

    ref, fw_int8 = results.get(("faster-whisper", "fp32", 1)), results.get(("faster-whisper", "int8", 1))
    reference = results.get((BASELINE_ENGINE, "fp32", 1))
    print(f"\nmodel {args.model}, threads {args.threads}, {ref.summary['total_audio_s'] / 60 if ref else 0:.1f} min "
          f"of audio, repeats {args.repeats}; results under {out_root}\n")
    print(f"{'engine':<16}{'precision':<20}{'batch':>6}{'proc s':>9}{'vs fw fp32':>12}{'vs fw int8':>12}"
          f"{'RTFx':>8}{'load s':>8}{'peak RSS MiB':>13}{'WER %':>8}{'vs openai %':>12}")
    for (engine, precision, batch), run in results.items():
        ratio = f"{run.seconds / ref.seconds:.2f}x" if ref else "-"
        ratio8 = f"{run.seconds / fw_int8.seconds:.2f}x" if fw_int8 else "-"
        parity = compute_metrics(run.out, corpus, reference.out, BASELINE_ENGINE)["vs_baseline"] \
            if reference else None
        print(f"{engine:<16}{precision:<20}{batch:>6}{run.seconds:>9.2f}{ratio:>12}{ratio8:>12}"
              f"{run.summary['rtfx']:>8.1f}{run.summary['model_load_s']:>8.2f}{run.rss_mb:>13.0f}"
              f"{100 * run.wer:>8.2f}{100 * parity['wer'] if parity else float('nan'):>12.2f}")


def line(name: str, value: float, bound: float, better: str = "<=", extra: str = "") -> None:
    """One target as measured: ratio, the bound, and met or MISSED."""
    met = value <= bound if better == "<=" else value >= bound
    print(f"  {name}: {value:.2f}x (target {better} {bound:.2f}x): {'met' if met else 'MISSED'}{extra}")


def missing(name: str, why: str) -> None:
    print(f"  {name}: not measured ({why})")


def print_targets(results: dict, batch: int, fewer: dict, threads: tuple[int, int]) -> None:
    """Every target of the ort engine, each as a ratio with met or MISSED (or why it was not measured)."""
    print("\ntargets (ort, same threads, this run):")
    fastest_within_gate(results)
    fp32_time(results)
    peak_rss(results)
    if fewer:
        scaling(results, fewer, threads)
    if batch > 1:
        batched(results, batch)


def within_gate(results: dict) -> tuple[float, dict]:
    """The gate: word accuracy at least ACCURACY_GATE of the reference implementation's (else faster-whisper
    int8's). (floor, the unbatched runs within it)."""
    baseline = results.get((BASELINE_ENGINE, "fp32", 1)) or results.get(("faster-whisper", "int8", 1))
    floor = ACCURACY_GATE * (1 - baseline.wer) if baseline else 0.0
    return floor, {k: v for k, v in results.items() if k[2] == 1 and 1 - v.wer >= floor}


def fastest_within_gate(results: dict) -> None:
    """ort's best build within the gate against the fastest other engine within it."""
    floor, within = within_gate(results)
    outside = sorted(f"{k[0]} {k[1]}" for k in results if k[2] == 1 and k not in within)
    print(f"  accuracy gate: word accuracy >= {100 * floor:.2f} %"
          f"{'; outside it: ' + ', '.join(outside) if outside else ''}")
    ours = {k: v for k, v in within.items() if k[0] == "ort"}
    theirs = {k: v for k, v in within.items() if k[0] != "ort"}
    name = "ort's best build within the gate / the fastest other engine within it"
    if ours and theirs:
        best, rival = min(ours, key=lambda k: ours[k].seconds), min(theirs, key=lambda k: theirs[k].seconds)
        line(f"{name} ({best[1]} / {rival[0]} {rival[1]})", ours[best].seconds / theirs[rival].seconds,
             TARGET_FASTEST)
    else:
        missing(name, ("no ort build" if not ours else "no other engine") + " within the gate")


def fp32_time(results: dict) -> None:
    ort32 = results.get(("ort", "fp32", 1))
    for other, bound in ((("faster-whisper", "fp32", 1), TARGET_FP32), (("openvino", "fp32", 1), TARGET_FP32_OPENVINO)):
        name, theirs = f"ort fp32 time / {other[0]} fp32", results.get(other)
        if ort32 and theirs:
            same = sum(ort32.texts.get(f) == t for f, t in theirs.texts.items())
            line(name, ort32.seconds / theirs.seconds, bound,
                 extra=f"; identical transcripts {same}/{len(theirs.texts)}")
        else:
            missing(name, "a run is missing")


def peak_rss(results: dict) -> None:
    for precision in ("fp32", "int8"):  # the default builds: what a user runs without options
        name = f"ort {precision} peak RSS / faster-whisper {precision}"
        o, f = results.get(("ort", precision, 1)), results.get(("faster-whisper", precision, 1))
        if o and f:
            line(name, o.rss_mb / f.rss_mb, TARGET_RSS, extra=f" ({o.rss_mb:.0f} / {f.rss_mb:.0f} MiB)")
        else:
            missing(name, "a run is missing")


def scaling(results: dict, fewer: dict, threads: tuple[int, int]) -> None:
    """The target is against every other engine; the best one within the gate and the speed-up of ort's
    stages (encoder, decoding loop; the runner's stage totals) are printed beside it, as the reason."""
    speedup = {k: fewer[k].seconds / v.seconds for k, v in results.items() if k in fewer}
    others = {k: s for k, s in speedup.items() if k[0] != "ort"}
    _, within = within_gate(results)
    print(f"  speed-ups {threads[0]} -> {threads[1]} threads: "
          + ", ".join(f"{k[0]} {k[1]} {s:.2f}x" for k, s in speedup.items()))
    for k, s in speedup.items():
        if k[0] != "ort" or not others:
            continue
        before = fewer[k].summary["stage_totals_s"]
        stages = {stage: before[stage] / total for stage, total in results[k].summary["stage_totals_s"].items()
                  if total and before.get(stage)}
        rival = max(others, key=others.get)
        gated = [o for o in others if o in within]
        in_gate = max(gated, key=others.get) if gated else None
        extra = (f"; within the gate {in_gate[0]} {in_gate[1]} {others[in_gate]:.2f}x ({s / others[in_gate]:.2f}x)"
                 if in_gate and in_gate != rival else "")
        if stages:
            extra += "; ort's stages " + ", ".join(f"{stage.removesuffix('_s')} {v:.2f}x" for stage, v in
                                                    stages.items())
        line(f"ort {k[1]} speed-up / the best other engine's ({rival[0]} {rival[1]} {others[rival]:.2f}x)",
             s / others[rival], TARGET_SCALING, better=">=", extra=extra)


def batched(results: dict, batch: int) -> None:
    fwb = results.get(("faster-whisper", "int8", batch))
    for precision in ("int8", "fp32"):
        ortb, one = results.get(("ort", precision, batch)), results.get(("ort", precision, 1))
        if ortb and fwb:
            line(f"ort {precision} batch {batch} throughput / faster-whisper int8 batched",
                 fwb.seconds / ortb.seconds, TARGET_BATCH, better=">=",
                 extra=f"; WER {100 * ortb.wer:.2f} % vs {100 * fwb.wer:.2f} %")
        if ortb and one:
            same = sum(ortb.texts.get(f) == t for f, t in one.texts.items())
            print(f"  ort {precision} batch {batch} / batch 1 throughput: {one.seconds / ortb.seconds:.2f}x; "
                  f"identical transcripts {same}/{len(one.texts)}")


if __name__ == "__main__":
    sys.exit(main())
