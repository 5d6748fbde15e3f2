"""The one runner every engine goes through: threads, loading, warm-up, timing and result files.

    python -m engines <engine> --model-dir DIR --audio-dir DIR --out DIR --threads N [...]

End-to-end time per file covers audio decoding, features, encoder, decoding and detokenisation;
model load is timed apart and warm-up runs are not counted.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
import platform
import resource
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

from .audio import SAMPLE_RATE, AudioError, list_audio, load_audio
from .base import DecodingSettings
from .registry import DEFAULT_PRECISION, ENGINES, engine_class

SCHEMA_PATH = Path(__file__).with_name("summary.schema.json")
PER_FILE_FIELDS = ["file", "repeat", "audio_s", "features_s", "encode_s", "decode_s", "end_to_end_s", "rtf",
                   "n_tokens", "text", "error"]
class LoadError(RuntimeError):
    """The engine could not load its model; the message names the engine and the cause."""


THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")


def visible_cpus() -> list[int]:
    # Inside a cpuset os.cpu_count() still sees every host CPU; the affinity mask does not.
    return sorted(os.sched_getaffinity(0))


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def percentiles(values: list[float]) -> dict:
    if not values:
        return {k: None for k in ("mean", "p50", "p90", "p95", "p99", "min", "max", "std")}
    arr = np.asarray(values, dtype=np.float64)
    return {"mean": float(arr.mean()), "p50": float(np.percentile(arr, 50)), "p90": float(np.percentile(arr, 90)),
            "p95": float(np.percentile(arr, 95)), "p99": float(np.percentile(arr, 99)),
            "min": float(arr.min()), "max": float(arr.max()), "std": float(arr.std())}


def _threads(text: str) -> int:
    if text == "auto":
        return len(visible_cpus())
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number or auto") from None


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m engines", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("engine", choices=sorted(ENGINES))
    p.add_argument("--model-dir", required=True, help="models/whisper-<name> (or one format folder in it)")
    p.add_argument("--model-name", help="name recorded in results (default: from --model-dir)")
    p.add_argument("--audio-dir", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--threads", type=_threads, required=True, help="N, or auto: every visible CPU")
    p.add_argument("--precision", help="fp32 or int8 (default per engine: fp32)")
    p.add_argument("--language", default="en")
    p.add_argument("--task", default="transcribe", choices=["transcribe", "translate"])
    p.add_argument("--beam-size", type=int, default=1)
    p.add_argument("--max-new-tokens", type=int, default=None)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--timestamps", action=argparse.BooleanOptionalAction, default=True,
                   help="decode in timestamp mode (default; --no-timestamps to disable)")
    p.add_argument("--condition-on-previous-text", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--batch-size", type=int, default=1)
    args = p.parse_args(argv)
    if args.threads < 1 or args.repeats < 1 or args.warmup < 0 or args.beam_size < 1:
        p.error("--threads, --repeats and --beam-size must be >= 1, --warmup >= 0")
    return args


def run(args: argparse.Namespace) -> dict:
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    cpus = visible_cpus()
    notes = []
    threads = args.threads
    if threads > len(cpus):
        notes.append(f"--threads {threads} > {len(cpus)} visible CPUs: configured down to {len(cpus)}")
        threads = len(cpus)
    for var in THREAD_ENV:
        os.environ[var] = str(threads)
    precision = args.precision or DEFAULT_PRECISION[args.engine]
    settings = DecodingSettings(language=args.language, task=args.task, beam_size=args.beam_size,
                                max_new_tokens=args.max_new_tokens, timestamps=args.timestamps,
                                condition_on_previous_text=args.condition_on_previous_text,
                                batch_size=args.batch_size)
    model_dir = Path(args.model_dir)
    model_name = args.model_name or model_dir.name.removeprefix("whisper-")
    engine = engine_class(args.engine)(model_dir, settings, threads, precision)
    files = list_audio(args.audio_dir)
    if not files:
        raise LoadError(f"{args.audio_dir}: no audio files (missing, empty or unreadable by uid {os.getuid()})")

    summary = {
        "schema_version": 1, "engine": args.engine, "convention": engine.convention, "model": model_name,
        "model_dir": str(model_dir), "variant": engine.variant, "precision": precision,
        "decoding": settings.as_dict(), "threads": threads, "threads_requested": args.threads,
        "cpuset": cpus, "n_visible_cpus": len(cpus), "warmup": args.warmup, "repeats": args.repeats,
        "environment": {"python": platform.python_version(), "platform": platform.platform(),
                        "processor": platform.processor() or platform.machine()},
        "status": "running", "n_files": len(files),
    }
    t0 = time.perf_counter()
    try:
        engine.load()
    except Exception as exc:
        summary.update(status="load_failed", error=f"{type(exc).__name__}: {exc}", notes=notes + engine.notes)
        _write_results(out_dir, [], summary)
        raise LoadError(f"{type(exc).__name__}: {exc}" if not isinstance(exc, (FileNotFoundError, ValueError))
                        else str(exc)) from exc
    summary["model_load_s"] = time.perf_counter() - t0
    summary["versions"] = {"engine": engine.versions(), "numpy": np.__version__}

    rows: list[dict] = []
    audio_cache: dict[Path, np.ndarray | str] = {}
    if files and args.warmup:
        # The smallest file that decodes: warm-up loads libraries and caches, it need not be long.
        warm = next((f for f in sorted(files, key=lambda f: f.stat().st_size)
                     if _safe_load(f, audio_cache) is not None), None)
        t_warm = time.perf_counter()
        for _ in range(args.warmup if warm is not None else 0):
            engine.transcribe(audio_cache[warm])
        summary.update(warmup_file=str(warm.relative_to(args.audio_dir)) if warm else None,
                       warmup_s=time.perf_counter() - t_warm)
    for repeat in range(args.repeats):
        for path in files:
            rows.append(_run_one(engine, path, repeat, Path(args.audio_dir)))
            _write_results(out_dir, rows, summary)  # a crash later loses nothing done so far
    summary.update(_aggregate(rows, args.repeats))
    summary["status"] = "ok" if summary["failures"] == 0 else ("failed" if summary["n_ok"] == 0 else "partial")
    summary["notes"] = notes + engine.notes
    summary["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    _write_results(out_dir, rows, summary)
    return summary


def _safe_load(path: Path, cache: dict):
    try:
        cache[path] = load_audio(path)
        return cache[path]
    except AudioError:
        return None


def _run_one(engine, path: Path, repeat: int, audio_root: Path) -> dict:
    row = {"file": str(path.relative_to(audio_root)), "repeat": repeat, "audio_s": None, "features_s": None,
           "encode_s": None, "decode_s": None, "end_to_end_s": None, "rtf": None, "n_tokens": None,
           "text": "", "error": ""}
    start = time.perf_counter()
    try:
        audio = load_audio(path)
        row["audio_s"] = audio.shape[0] / SAMPLE_RATE
        result = engine.transcribe(audio)
    except AudioError as exc:
        row["error"] = f"audio: {exc}"
        return row
    except Exception as exc:  # an engine failure on one file is a row, never the end of the run
        row["error"] = f"{type(exc).__name__}: {exc}"
        traceback.print_exc(file=sys.stderr)
        return row
    elapsed = time.perf_counter() - start
    row.update(end_to_end_s=elapsed, rtf=elapsed / row["audio_s"] if row["audio_s"] else None,
               n_tokens=result.n_tokens, text=result.text, **{k: result.stage_s.get(k) for k in
                                                              ("features_s", "encode_s", "decode_s")})
    return row


def _aggregate(rows: list[dict], repeats: int) -> dict:
    ok = [r for r in rows if not r["error"]]
    e2e = [r["end_to_end_s"] for r in ok]
    total_audio = sum(r["audio_s"] for r in ok) / repeats
    total_proc = sum(e2e) / repeats
    return {
        "n_ok": len(ok), "failures": len(rows) - len(ok),
        "failed_files": sorted({r["file"] for r in rows if r["error"]}),
        "total_audio_s": total_audio, "total_processing_s": total_proc,
        "end_to_end_s": percentiles(e2e),
        "rtf": total_proc / total_audio if total_audio else None,
        "rtfx": total_audio / total_proc if total_proc else None,
        "n_tokens": sum(r["n_tokens"] for r in ok) // repeats,
        "stage_totals_s": {k: (sum(r[k] for r in ok if r[k] is not None) / repeats
                               if any(r[k] is not None for r in ok) else None)
                           for k in ("features_s", "encode_s", "decode_s")},
    }


def _write_results(out_dir: Path, rows: list[dict], summary: dict) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=PER_FILE_FIELDS)
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(out_dir / "inference_per_file.csv", buf.getvalue())
    write_atomic(out_dir / "inference_per_file.json", json.dumps(rows, indent=1) + "\n")
    write_atomic(out_dir / "inference_summary.json", json.dumps(summary, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        summary = run(args)
    except LoadError as exc:
        print(f"error: {args.engine}: {exc}", file=sys.stderr)
        return 2
    rtf = summary["rtf"]
    print(f"{summary['engine']} {summary['model']} {summary['precision']} threads={summary['threads']}: "
          f"{summary['n_ok']} runs ok, {summary['failures']} failed, "
          f"RTF {rtf:.4f}" if rtf else "no file transcribed", file=sys.stderr)
    return 0 if summary["n_ok"] else 1
