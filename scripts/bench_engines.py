"""Run every engine on one model, same threads and corpus, and print speed ratios, memory and WER.

    python scripts/bench_engines.py [--model base] [--threads 2] [--scaling-from 1] [--audio-dir audio/synth]
        [--repeats 1] [--batch-size 8] [--ort-builds q8-b64,int8-dynamic]

Each engine runs in its own child process (`python -m engines ...`), pinned with taskset to as many CPUs
as threads, one after another, so peak RSS is each engine's own. Processing time is the sum of end-to-end
times over the corpus (model load apart, warm-up not counted), shown as a ratio to faster-whisper float32.
Not a test: it prints figures, then every target of the ort engine as a ratio with met or MISSED: its best
build within the accuracy gate against the fastest other engine within it, fp32 against faster-whisper and
OpenVINO fp32, peak RSS against faster-whisper at equal precision, with --scaling-from the speed-up from
that many threads to --threads against the best other engine's, and with --batch-size the throughput of
batched runs against faster-whisper's batched pipeline.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RUNS = [("faster-whisper", "fp32"), ("faster-whisper", "int8"), ("ort", "fp32"), ("ort", "int8"),
        ("openai-whisper", "fp32"), ("hf", "fp32"), ("whisper-cpp", "f16"), ("whisper-cpp", "q8_0"),
        ("openvino", "fp32"), ("openvino", "int8")]
# The ort engine's targets, as ratios: time of its best build within the gate to the fastest other engine
# within it; ort fp32 time to faster-whisper fp32's and to OpenVINO fp32's; peak RSS to faster-whisper's at
# equal precision; its 1->N speed-up to the best other engine's; batched throughput to faster-whisper's.
TARGET_FASTEST, TARGET_FP32, TARGET_FP32_OPENVINO, TARGET_RSS, TARGET_SCALING, TARGET_BATCH = \
    0.90, 0.70, 1.0, 1.0, 1.0, 1.3
GATE = 0.99  # word accuracy at least this share of the baseline's (openai-whisper fp32, else faster-whisper int8)


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
    from harness.scoring.metrics import compute_metrics

    runs = [tuple(r.split(":")) + (1,) for r in args.engines.split(",")] if args.engines else \
        [(e, v, 1) for e, v in RUNS]
    runs += [("ort", b, 1) for b in args.ort_builds.split(",") if b]
    if args.batch_size > 1:
        runs += [(e, v, args.batch_size) for e, v in (("ort", "fp32"), ("ort", "int8"), ("faster-whisper", "int8"))]
    model_dir = ROOT / "models" / f"whisper-{args.model}"
    corpus = load_corpus(args.audio_dir)
    out_root = Path(tempfile.mkdtemp(prefix="bench-"))
    counts = [args.threads] + ([args.scaling_from] if args.scaling_from else [])
    by_threads = run_all(runs, counts, model_dir, args, corpus, out_root)
    results, fewer = by_threads[args.threads], by_threads.get(args.scaling_from, {})

    ref = results.get(("faster-whisper", "fp32", 1))
    fw_int8 = results.get(("faster-whisper", "int8", 1))
    print(f"\nmodel {args.model}, threads {args.threads}, {ref[0]['total_audio_s'] / 60 if ref else 0:.1f} min of "
          f"audio, repeats {args.repeats}; results under {out_root}\n")
    print(f"{'engine':<16}{'precision':<20}{'batch':>6}{'proc s':>9}{'vs fw fp32':>12}{'vs fw int8':>12}"
          f"{'RTFx':>8}{'load s':>8}{'peak RSS MiB':>13}{'WER %':>8}{'vs openai %':>12}")
    openai = results.get(("openai-whisper", "fp32", 1))
    for (engine, precision, batch), (summary, wer, _, out) in results.items():
        ratio = f"{_t(summary) / _t(ref[0]):.2f}x" if ref else "-"
        ratio8 = f"{_t(summary) / _t(fw_int8[0]):.2f}x" if fw_int8 else "-"
        # word-level difference from openai-whisper's transcripts (the parity figure)
        parity = compute_metrics(out, corpus, openai[3], "openai-whisper")["vs_baseline"] if openai else None
        print(f"{engine:<16}{precision:<20}{batch:>6}{_t(summary):>9.2f}{ratio:>12}{ratio8:>12}"
              f"{summary['rtfx']:>8.1f}{summary['model_load_s']:>8.2f}{summary['peak_rss_mb']:>13.0f}"
              f"{100 * wer:>8.2f}{100 * parity['wer'] if parity else float('nan'):>12.2f}")
    print_targets(results, args.batch_size, fewer, (args.scaling_from, args.threads))
    return 0


def run_all(runs: list[tuple], counts: list[int], model_dir: Path, args, corpus, out_root: Path) -> dict:
    """threads -> (engine, precision, batch) -> (summary, WER, texts by file, output folder). Each run is its
    own process; an engine's thread counts run back to back, so the speed-up shares the machine's drift."""
    from harness.scoring.metrics import compute_metrics

    results = {n: {} for n in counts}
    for engine, precision, batch in runs:
        for threads in counts if batch == 1 else counts[:1]:
            out = out_root / f"{engine}-{precision}-b{batch}-t{threads}"
            # Pinned like a container: the first `threads` CPUs this process may use.
            cpus = ",".join(map(str, sorted(os.sched_getaffinity(0))[:threads]))
            cmd = ["taskset", "-c", cpus, sys.executable, "-m", "engines", engine, "--model-dir", str(model_dir),
                   "--audio-dir", args.audio_dir, "--out", str(out), "--threads", str(threads),
                   "--precision", precision,
                   "--warmup", "1", "--repeats", str(args.repeats), "--batch-size", str(batch)]
            proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
            if proc.returncode != 0:
                print(f"{engine} {precision} ({threads} threads): failed: {proc.stderr.strip().splitlines()[-1:]}")
                continue
            summary = json.loads((out / "inference_summary.json").read_text())
            metrics = compute_metrics(out, corpus, None, "")
            texts = {r["file"]: r["text"] for r in json.loads((out / "inference_per_file.json").read_text())}
            results[threads][(engine, precision, batch)] = (summary, metrics["vs_reference"]["wer"], texts, out)
    return results


def _t(summary: dict) -> float:
    return summary["total_processing_s"]


def print_targets(results: dict, batch: int, fewer: dict, threads: tuple[int, int]) -> None:
    """Each target as measured: ratio, the bound, and met or MISSED."""
    def line(name, value, bound, better="<=", extra=""):
        met = value <= bound if better == "<=" else value >= bound
        print(f"  {name}: {value:.2f}x (target {better} {bound:.2f}x): {'met' if met else 'MISSED'}{extra}")

    def missing(name, why):
        print(f"  {name}: not measured ({why})")

    get = results.get
    print("\ntargets (ort, same threads, this run):")
    baseline = get(("openai-whisper", "fp32", 1)) or get(("faster-whisper", "int8", 1))
    floor = GATE * (1 - baseline[1]) if baseline else 0.0
    within = {k: v for k, v in results.items() if k[2] == 1 and 1 - v[1] >= floor}
    outside = sorted(f"{k[0]} {k[1]}" for k in results if k[2] == 1 and k not in within)
    print(f"  accuracy gate: word accuracy >= {100 * floor:.2f} %"
          f"{'; outside it: ' + ', '.join(outside) if outside else ''}")
    ours = {k: v for k, v in within.items() if k[0] == "ort"}
    theirs = {k: v for k, v in within.items() if k[0] != "ort"}
    name = "ort's best build within the gate / the fastest other engine within it"
    if ours and theirs:
        best, rival = min(ours, key=lambda k: _t(ours[k][0])), min(theirs, key=lambda k: _t(theirs[k][0]))
        line(f"{name} ({best[1]} / {rival[0]} {rival[1]})", _t(ours[best][0]) / _t(theirs[rival][0]), TARGET_FASTEST)
    else:
        missing(name, ("no ort build" if not ours else "no other engine") + " within the gate")
    ort32 = get(("ort", "fp32", 1))
    for other, bound in ((("faster-whisper", "fp32", 1), TARGET_FP32), (("openvino", "fp32", 1), TARGET_FP32_OPENVINO)):
        name = f"ort fp32 time / {other[0]} fp32"
        if ort32 and get(other):
            same = sum(ort32[2].get(f) == t for f, t in get(other)[2].items())
            line(name, _t(ort32[0]) / _t(get(other)[0]), bound,
                 extra=f"; identical transcripts {same}/{len(get(other)[2])}")
        else:
            missing(name, "a run is missing")
    for precision in ("fp32", "int8"):  # the default builds: what a user runs without options
        name = f"ort {precision} peak RSS / faster-whisper {precision}"
        o, f = get(("ort", precision, 1)), get(("faster-whisper", precision, 1))
        if o and f:
            line(name, o[0]["peak_rss_mb"] / f[0]["peak_rss_mb"], TARGET_RSS,
                 extra=f" ({o[0]['peak_rss_mb']:.0f} / {f[0]['peak_rss_mb']:.0f} MiB)")
        else:
            missing(name, "a run is missing")
    if fewer:
        speedup = {k: _t(fewer[k][0]) / _t(v[0]) for k, v in results.items() if k in fewer}
        others = {k: s for k, s in speedup.items() if k[0] != "ort"}
        print(f"  speed-ups {threads[0]} -> {threads[1]} threads: "
              + ", ".join(f"{k[0]} {k[1]} {s:.2f}x" for k, s in speedup.items()))
        for k, s in speedup.items():
            if k[0] == "ort" and others:
                rival = max(others, key=others.get)
                line(f"ort {k[1]} speed-up / the best other engine's ({rival[0]} {rival[1]} {others[rival]:.2f}x)",
                     s / others[rival], TARGET_SCALING, better=">=")
    if batch > 1:
        fwb = get(("faster-whisper", "int8", batch))
        for precision in ("int8", "fp32"):
            ortb = get(("ort", precision, batch))
            if ortb and fwb:
                line(f"ort {precision} batch {batch} throughput / faster-whisper int8 batched",
                     _t(fwb[0]) / _t(ortb[0]), TARGET_BATCH, better=">=",
                     extra=f"; WER {100 * ortb[1]:.2f} % vs {100 * fwb[1]:.2f} %")
            one = get(("ort", precision, 1))
            if ortb and one:
                same = sum(ortb[2].get(f) == t for f, t in one[2].items())
                print(f"  ort {precision} batch {batch} / batch 1 throughput: {_t(one[0]) / _t(ortb[0]):.2f}x; "
                      f"identical transcripts {same}/{len(one[2])}")


if __name__ == "__main__":
    sys.exit(main())
