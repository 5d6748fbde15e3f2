"""Run every engine on one model, same threads and corpus, and print speed ratios, memory and WER.

    python scripts/bench_engines.py [--model base] [--threads 2] [--audio-dir audio/synth] [--repeats 1]

Each engine runs in its own child process (`python -m engines ...`), pinned with taskset to as many CPUs
as threads, one after another, so peak RSS is
each engine's own. Processing time is the sum of end-to-end times over the corpus (model load apart,
warm-up not counted), shown as a ratio to faster-whisper float32. Not a test: it prints figures.
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
        ("openai-whisper", "fp32"), ("hf", "fp32"), ("whisper-cpp", "f16"), ("whisper-cpp", "q8_0")]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="base")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--audio-dir", default=str(ROOT / "audio" / "synth"))
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--engines", help="comma-separated engine:precision pairs (default: all)")
    args = p.parse_args()

    from harness.audio.corpus import load_corpus
    from harness.scoring.metrics import compute_metrics

    runs = [tuple(r.split(":")) for r in args.engines.split(",")] if args.engines else RUNS
    model_dir = ROOT / "models" / f"whisper-{args.model}"
    corpus = load_corpus(args.audio_dir)
    out_root = Path(tempfile.mkdtemp(prefix="bench-"))
    results = {}
    for engine, precision in runs:
        out = out_root / f"{engine}-{precision}"
        # Pinned like a container: the first --threads CPUs this process may use.
        cpus = ",".join(map(str, sorted(os.sched_getaffinity(0))[: args.threads]))
        cmd = ["taskset", "-c", cpus, sys.executable, "-m", "engines", engine, "--model-dir", str(model_dir),
               "--audio-dir", args.audio_dir, "--out", str(out), "--threads", str(args.threads),
               "--precision", precision,
               "--warmup", "1", "--repeats", str(args.repeats)]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"{engine} {precision}: failed: {proc.stderr.strip().splitlines()[-1:]}")
            continue
        summary = json.loads((out / "inference_summary.json").read_text())
        metrics = compute_metrics(out, corpus, None, "")
        results[(engine, precision)] = (summary, metrics["vs_reference"]["wer"])

    ref = results.get(("faster-whisper", "fp32"))
    print(f"\nmodel {args.model}, threads {args.threads}, {ref[0]['total_audio_s'] / 60 if ref else 0:.1f} min of "
          f"audio, repeats {args.repeats}; results under {out_root}\n")
    fw_int8 = results.get(("faster-whisper", "int8"))
    print(f"{'engine':<16}{'precision':<10}{'proc s':>9}{'vs fw fp32':>12}{'vs fw int8':>12}{'RTFx':>8}{'load s':>8}"
          f"{'peak RSS MiB':>13}{'WER %':>8}")
    for (engine, precision), (summary, wer) in results.items():
        ratio = f"{summary['total_processing_s'] / ref[0]['total_processing_s']:.2f}x" if ref else "-"
        ratio8 = f"{summary['total_processing_s'] / fw_int8[0]['total_processing_s']:.2f}x" if fw_int8 else "-"
        print(f"{engine:<16}{precision:<10}{summary['total_processing_s']:>9.2f}{ratio:>12}{ratio8:>12}"
              f"{summary['rtfx']:>8.1f}{summary['model_load_s']:>8.2f}{summary['peak_rss_mb']:>13.0f}"
              f"{100 * wer:>8.2f}")
    for engine in ("ort", "faster-whisper"):
        if (engine, "int8") in results and (engine, "fp32") in results:
            int8, fp32 = results[(engine, "int8")], results[(engine, "fp32")]
            line = f"{engine} int8: WER int8 - fp32: {100 * (int8[1] - fp32[1]):+.2f} points"
            if fw_int8 and engine != "faster-whisper":
                line += f"; {int8[0]['total_processing_s'] / fw_int8[0]['total_processing_s']:.2f}x the time " \
                        f"of faster-whisper int8"
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
