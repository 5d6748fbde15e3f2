"""The one runner every engine goes through: threads, loading, warm-up, timing and result files.

    python -m engines <engine> --model-dir DIR --audio-dir DIR --out DIR --threads N [...]

End-to-end time per file covers audio decoding, features, encoder, decoding and detokenisation;
model load is timed apart and warm-up runs are not counted.

Cost stays linear in the corpus: each file's row is appended to `inference_per_file.jsonl` as it
finishes (a crash keeps every finished row), and the aggregate files (`inference_per_file.{csv,json}`,
the final `inference_summary.json`) are written once, at the end.
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
from .cpus import bind_threads, visible_cpus
from .registry import SPECS, spec
from .results import PER_FILE_CSV, PER_FILE_JSON, ROWS_FILE, SUMMARY_FILE, FileRow, Latency, Status

SCHEMA_PATH = Path(__file__).with_name("summary.schema.json")
STAGES = ("features_s", "encode_s", "decode_s")
LONG_FORM_S = 30.0  # Whisper's window: longer audio runs the sequential long-form path


class LoadError(RuntimeError):
    """The engine could not load its model; the message names the engine and the cause."""


def write_atomic(path: Path, text: str) -> None:
    """Temporary name, then rename: a reader never sees half a file, a failed write leaves no debris."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
    p.add_argument("engine", choices=sorted(SPECS))
    p.add_argument("--model-dir", required=True, help="models/whisper-<name> (or one format folder in it)")
    p.add_argument("--model-name", help="name recorded in results (default: from --model-dir)")
    p.add_argument("--audio-dir", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--threads", type=_threads, required=True, help="N, or auto: every visible CPU")
    p.add_argument("--precision", help="a variant of the engine's spec (default: the spec's default); for ort "
                                       "also a build under the model's variants/")
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
    p.add_argument("--low-memory", action="store_true", help="ort: large blocks go back to the system when "
                   "freed (glibc's mmap threshold at 1 MiB): peak RSS on base fp32 -20 %%, time +5 to 9 %%")
    p.add_argument("--profile", action="store_true", help="ort: onnxruntime's operator profile, reduced to "
                   "time per operator type (ort_profile_ops.{csv,md} in --out); slows the run")
    args = p.parse_args(argv)
    if args.threads < 1 or args.repeats < 1 or args.warmup < 0 or args.beam_size < 1:
        p.error("--threads, --repeats and --beam-size must be >= 1, --warmup >= 0")
    return args


def decoding_settings(args: argparse.Namespace) -> DecodingSettings:
    """The common decoding settings these flags request (the host uses it to match baseline runs)."""
    return DecodingSettings(language=args.language, task=args.task, beam_size=args.beam_size,
                            max_new_tokens=args.max_new_tokens, timestamps=args.timestamps,
                            condition_on_previous_text=args.condition_on_previous_text,
                            batch_size=args.batch_size)


def run(args: argparse.Namespace) -> dict:
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    cpus = visible_cpus()
    notes: list[str] = []
    threads = _usable_threads(args.threads, cpus, notes)
    bind_threads(threads)  # for engines started in-process; `python -m engines` bound them before numpy
    engine_spec = spec(args.engine)
    precision = args.precision or engine_spec.default_variant
    settings = decoding_settings(args)
    engine = engine_spec.engine_class()(Path(args.model_dir), settings, threads, precision)
    if args.profile:
        engine.profile_dir = out_dir
    engine.low_memory = args.low_memory
    audio_root = Path(args.audio_dir)
    files = list_audio(audio_root)
    if not files:
        raise LoadError(f"{args.audio_dir}: no audio files (missing, empty or unreadable by uid {os.getuid()})")

    summary = _first_summary(args, engine_spec, engine, precision, threads, cpus, len(files))
    write_atomic(out_dir / SUMMARY_FILE, json.dumps(summary, indent=2) + "\n")
    _load(engine, engine_spec, precision, summary, notes, out_dir)
    summary.update(_warm_up(engine, files, args.warmup, audio_root))
    rows = _transcribe_all(engine, files, args.repeats, audio_root, out_dir / ROWS_FILE, notes)
    summary.update(engine.finish())
    summary.update(aggregate(rows, args.repeats))
    summary["status"] = str(Status.OK if summary["failures"] == 0 else
                            Status.FAILED if summary["n_ok"] == 0 else Status.PARTIAL)
    summary["notes"] = notes + engine.notes
    summary["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    _validate(summary)
    write_results(out_dir, rows, summary)
    return summary


def _usable_threads(requested: int, cpus: list[int], notes: list[str]) -> int:
    """The threads asked for, at most one per visible CPU (a note says when fewer)."""
    if requested > len(cpus):
        notes.append(f"--threads {requested} > {len(cpus)} visible CPUs: configured down to {len(cpus)}")
        return len(cpus)
    return requested


def _first_summary(args: argparse.Namespace, engine_spec, engine, precision: str, threads: int,
                   cpus: list[int], n_files: int) -> dict:
    """The summary as written before loading: what runs, with what, where (status running)."""
    model_dir = Path(args.model_dir)
    return {
        "schema_version": 1, "engine": args.engine, "convention": engine_spec.convention,
        "model": args.model_name or model_dir.name.removeprefix("whisper-"),
        "model_dir": str(model_dir), "variant": engine.variant, "precision": precision,
        "decoding": engine.settings.as_dict(), "threads": threads, "threads_requested": args.threads,
        "cpuset": cpus, "n_visible_cpus": len(cpus), "warmup": args.warmup, "repeats": args.repeats,
        "environment": {"python": platform.python_version(), "platform": platform.platform(),
                        "processor": platform.processor() or platform.machine()},
        "status": str(Status.RUNNING), "n_files": n_files,
    }


def _load(engine, engine_spec, precision: str, summary: dict, notes: list[str], out_dir: Path) -> None:
    """Load the model, timed; a failure is written to the summary as load_failed and raised as LoadError."""
    t0 = time.perf_counter()
    try:
        engine_spec.check_variant(precision)
        engine.load()
    except Exception as exc:
        summary.update(status=str(Status.LOAD_FAILED), error=f"{type(exc).__name__}: {exc}",
                       notes=notes + engine.notes)
        write_atomic(out_dir / SUMMARY_FILE, json.dumps(summary, indent=2) + "\n")
        raise LoadError(f"{type(exc).__name__}: {exc}" if not isinstance(exc, (FileNotFoundError, ValueError))
                        else str(exc)) from exc
    summary["model_load_s"] = time.perf_counter() - t0
    summary["versions"] = {"engine": engine.versions(), "numpy": np.__version__}
    summary["decoding_applied"] = engine.applied_decoding()


def _transcribe_all(engine, files: list[Path], repeats: int, audio_root: Path, rows_file: Path,
                    notes: list[str]) -> list[FileRow]:
    """Every file, `repeats` times, one at a time or in batches; each row appended to rows_file as it ends."""
    rows: list[FileRow] = []
    batch = max(engine.settings.batch_size, 1)
    if batch > 1:
        notes.append(f"--batch-size {batch}: files go {batch} at a time in corpus order; a file's time is its "
                     f"share of its batch's wall time, by audio length")
    with open(rows_file, "w", encoding="utf-8") as log:
        for repeat in range(repeats):
            for start in range(0, len(files), batch):
                chunk = files[start:start + batch]
                done = [_run_one(engine, chunk[0], repeat, audio_root)] if batch == 1 else \
                    _run_batch(engine, chunk, repeat, audio_root)
                for row in done:
                    rows.append(row)
                    log.write(json.dumps(row.to_dict()) + "\n")
                log.flush()  # the rows survive the process: a crash loses nothing finished
    return rows


def _warm_up(engine, files: list[Path], warmup: int, audio_root: Path) -> dict:
    """Untimed runs on the smallest file that decodes and, when the corpus has one, the smallest
    long-form file, so that both code paths are warm before timing starts."""
    if not warmup:
        return {"warmup_files": [], "warmup_s": 0.0}
    decoded = []
    for path in sorted(files, key=lambda f: f.stat().st_size):
        try:
            audio = load_audio(path)
        except AudioError:
            continue
        long_form = audio.shape[0] / SAMPLE_RATE > LONG_FORM_S
        if not any(lf == long_form for _, _, lf in decoded):
            decoded.append((path, audio, long_form))
        if len(decoded) == 2:
            break
    start = time.perf_counter()
    for _ in range(warmup):
        for _path, audio, _lf in decoded:
            engine.before_file()
            engine.transcribe(audio)
        if engine.settings.batch_size > 1 and len(decoded) > 1:  # the batched path too
            engine.before_file()
            engine.transcribe_batch([audio for _, audio, _ in decoded])
    names = [str(p.relative_to(audio_root)) for p, _, _ in decoded]
    return {"warmup_files": names, "warmup_file": names[0] if names else None,
            "warmup_s": time.perf_counter() - start}


def _run_one(engine, path: Path, repeat: int, audio_root: Path) -> FileRow:
    row = FileRow(file=str(path.relative_to(audio_root)), repeat=repeat)
    engine.before_file()
    start = time.perf_counter()
    try:
        audio = load_audio(path)
        row.audio_s = audio.shape[0] / SAMPLE_RATE
        result = engine.transcribe(audio)
    except AudioError as exc:
        row.error = f"audio: {exc}"
        return row
    except Exception as exc:  # an engine failure on one file is a row, never the end of the run
        row.error = f"{type(exc).__name__}: {exc}"
        traceback.print_exc(file=sys.stderr)
        return row
    elapsed = time.perf_counter() - start
    row.end_to_end_s, row.rtf = elapsed, elapsed / row.audio_s if row.audio_s else None
    row.n_tokens, row.text = result.n_tokens, result.text
    row.features_s, row.encode_s, row.decode_s = (result.stage_s.get(k) for k in STAGES)
    return row


def _run_batch(engine, paths: list[Path], repeat: int, audio_root: Path) -> list[FileRow]:
    """Several files through `engine.transcribe_batch`, timed together; unreadable audio is its own row."""
    rows = [FileRow(file=str(p.relative_to(audio_root)), repeat=repeat) for p in paths]
    loaded = []
    engine.before_file()
    start = time.perf_counter()
    for row, path in zip(rows, paths):
        try:
            audio = load_audio(path)
        except AudioError as exc:
            row.error = f"audio: {exc}"
            continue
        row.audio_s = audio.shape[0] / SAMPLE_RATE
        loaded.append((row, audio))
    if not loaded:
        return rows
    try:
        results = engine.transcribe_batch([a for _, a in loaded])
    except Exception as exc:  # the batch failed: each of its files is a row with the error
        traceback.print_exc(file=sys.stderr)
        for row, _ in loaded:
            row.error = f"{type(exc).__name__}: {exc}"
        return rows
    elapsed = time.perf_counter() - start
    total_audio = sum(row.audio_s for row, _ in loaded)
    for (row, _), result in zip(loaded, results):
        row.end_to_end_s = elapsed * row.audio_s / total_audio
        row.rtf = row.end_to_end_s / row.audio_s if row.audio_s else None
        row.n_tokens, row.text = result.n_tokens, result.text
        row.features_s, row.encode_s, row.decode_s = (result.stage_s.get(k) for k in STAGES)
    return rows


def aggregate(rows: list[FileRow], repeats: int) -> dict:
    """RTF is processing over audio of the same (ok) rows, so a file that failed in one repeat only
    counts in neither; total_audio_s is the corpus audio transcribed, each file once."""
    ok = [r for r in rows if not r.error]
    e2e = [r.end_to_end_s for r in ok]
    audio_ok = sum(r.audio_s for r in ok)
    rtf = sum(e2e) / audio_ok if audio_ok else None
    total_audio = sum({r.file: r.audio_s for r in ok}.values())
    stage_totals = {k: (sum(getattr(r, k) for r in ok if getattr(r, k) is not None) / repeats
                        if any(getattr(r, k) is not None for r in ok) else None) for k in STAGES}
    return {
        "n_ok": len(ok), "failures": len(rows) - len(ok),
        "failed_files": sorted({r.file for r in rows if r.error}),
        "total_audio_s": total_audio, "total_processing_s": rtf * total_audio if rtf is not None else 0.0,
        "end_to_end_s": Latency.from_values(e2e).to_dict(),
        "rtf": rtf, "rtfx": 1 / rtf if rtf else None,
        "n_tokens": sum(r.n_tokens for r in ok) // repeats,
        "stage_totals_s": stage_totals,
        # decoder time per text token (prompt steps included in the time, not in the count)
        "decode_ms_per_token": 1000 * stage_totals["decode_s"] / (sum(r.n_tokens for r in ok) / repeats)
        if stage_totals.get("decode_s") and any(r.n_tokens for r in ok) else None,
    }


def _validate(summary: dict) -> None:
    """The summary is checked against its JSON Schema when written (jsonschema is in every engine group)."""
    try:
        import jsonschema
    except ImportError:
        return
    jsonschema.validate(summary, json.loads(SCHEMA_PATH.read_text()))


def write_results(out_dir: Path, rows: list[FileRow], summary: dict) -> None:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=FileRow.field_names())
    writer.writeheader()
    writer.writerows(r.to_dict() for r in rows)
    write_atomic(out_dir / PER_FILE_CSV, text.getvalue())
    write_atomic(out_dir / PER_FILE_JSON, json.dumps([r.to_dict() for r in rows], indent=1) + "\n")
    write_atomic(out_dir / SUMMARY_FILE, json.dumps(summary, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        summary = run(args)
    except LoadError as exc:
        print(f"error: {args.engine}: {exc}", file=sys.stderr)
        return 2
    rtf, failed = summary["rtf"], summary.get("failed_files") or []
    outcome = f"RTF {rtf:.4f}" if rtf else "no file transcribed"
    where = (f" ({', '.join(failed[:3])}{', ...' if len(failed) > 3 else ''}: each error in {PER_FILE_CSV})"
             if failed else "")
    print(f"{summary['engine']} {summary['model']} {summary['precision']} threads={summary['threads']}: "
          f"{summary['n_ok']} runs ok, {summary['failures']} failed{where}, {outcome}", file=sys.stderr)
    return 0 if summary["n_ok"] else 1
