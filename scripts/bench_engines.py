"""Run every engine on one model, same threads and corpus, and print speed ratios, memory and WER.

    python scripts/bench_engines.py [--model base] [--threads 2] [--audio-dir audio/synth] [--repeats 1]
        [--batch-size 8] [--ort-builds q8-b64,int8-dynamic]

Each engine runs in its own child process (`python -m engines ...`), pinned with taskset to as many CPUs
as threads, one after another, so peak RSS is
each engine's own. Processing time is the sum of end-to-end times over the corpus (model load apart,
warm-up not counted), shown as a ratio to faster-whisper float32. Not a test: it prints figures, then
each of the ort engine's targets as a ratio (latency at batch 1, memory, and with --batch-size the
throughput of batched runs against faster-whisper's batched pipeline).
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
# The ort engine's targets (the issue this script measures): time ratios to faster-whisper.
TARGET_FP32, TARGET_INT8, TARGET_BATCH = 0.70, 0.75, 1.3
GATE = 0.99  # word accuracy at least this share of faster-whisper int8's, as the report's gate


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="base")
    p.add_argument("--threads", type=int, default=2)
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
    results = {}
    for engine, precision, batch in runs:
        out = out_root / f"{engine}-{precision}-b{batch}"
        # Pinned like a container: the first --threads CPUs this process may use.
        cpus = ",".join(map(str, sorted(os.sched_getaffinity(0))[: args.threads]))
        cmd = ["taskset", "-c", cpus, sys.executable, "-m", "engines", engine, "--model-dir", str(model_dir),
               "--audio-dir", args.audio_dir, "--out", str(out), "--threads", str(args.threads),
               "--precision", precision,
               "--warmup", "1", "--repeats", str(args.repeats), "--batch-size", str(batch)]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"{engine} {precision}: failed: {proc.stderr.strip().splitlines()[-1:]}")
            continue
        summary = json.loads((out / "inference_summary.json").read_text())
        metrics = compute_metrics(out, corpus, None, "")
        texts = {r["file"]: r["text"] for r in json.loads((out / "inference_per_file.json").read_text())}
        results[(engine, precision, batch)] = (summary, metrics["vs_reference"]["wer"], texts, out)

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
    print_targets(results, args.batch_size)
    return 0


def _t(summary: dict) -> float:
    return summary["total_processing_s"]


def print_targets(results: dict, batch: int) -> None:
    """Each target as measured: ratio, the bound, and met or missed."""
    def line(name, value, bound, better="<=", extra=""):
        if value is None:
            print(f"  {name}: not measured{extra}")
            return
        met = value <= bound if better == "<=" else value >= bound
        print(f"  {name}: {value:.2f}x (target {better} {bound:.2f}x): {'met' if met else 'MISSED'}{extra}")

    get = results.get
    print("\ntargets (ort against faster-whisper, same threads, this run):")
    ort32, fw32, fw8 = get(("ort", "fp32", 1)), get(("faster-whisper", "fp32", 1)), get(("faster-whisper", "int8", 1))
    if ort32 and fw32:
        same = sum(ort32[2].get(f) == t for f, t in fw32[2].items())
        line("ort fp32 time / faster-whisper fp32", _t(ort32[0]) / _t(fw32[0]), TARGET_FP32,
             extra=f"; identical transcripts {same}/{len(fw32[2])}")
        line("ort fp32 peak RSS / faster-whisper fp32", ort32[0]["peak_rss_mb"] / fw32[0]["peak_rss_mb"], 1.0)
    if fw8:
        floor = GATE * (1 - fw8[1])
        int8 = {k: v for k, v in results.items() if k[0] == "ort" and k[2] == 1 and k[1] != "fp32"
                and 1 - v[1] >= floor}
        if int8:
            best = min(int8, key=lambda k: _t(int8[k][0]))
            line(f"best ort int8 build within the gate ({best[1]}) time / faster-whisper int8",
                 _t(int8[best][0]) / _t(fw8[0]), TARGET_INT8)
            line(f"ort {best[1]} peak RSS / faster-whisper int8", int8[best][0]["peak_rss_mb"] / fw8[0]["peak_rss_mb"],
                 1.0)
            lean = min(int8, key=lambda k: int8[k][0]["peak_rss_mb"])
            if lean != best:
                line(f"leanest ort int8 build within the gate ({lean[1]}) peak RSS / faster-whisper int8",
                     int8[lean][0]["peak_rss_mb"] / fw8[0]["peak_rss_mb"], 1.0,
                     extra=f"; its time {_t(int8[lean][0]) / _t(fw8[0]):.2f}x")
        else:
            print("  no ort int8 build within the accuracy gate")
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
    for precision, others in (("fp32", [("openvino", "fp32"), ("whisper-cpp", "f16")]),
                              ("int8", [("openvino", "int8"), ("whisper-cpp", "q8_0")])):
        ours = get(("ort", precision, 1))
        for engine, variant in others:
            theirs = get((engine, variant, 1))
            if ours and theirs:
                line(f"ort {precision} time / {engine} {variant}", _t(ours[0]) / _t(theirs[0]), 1.0)


if __name__ == "__main__":
    sys.exit(main())
