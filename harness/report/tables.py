"""summary_table.{md,csv} per SUT and container shape, and results/merged.csv across all of them."""
from __future__ import annotations

import csv
import io
from pathlib import Path

from tabulate import tabulate

from ..files import write_atomic

# (key, markdown header, markdown format); the CSV keeps every key at full precision.
COLUMNS = [
    ("engine", "engine", "{}"), ("model", "model", "{}"), ("variant", "variant", "{}"),
    ("precision", "precision", "{}"), ("cores", "cores", "{}"), ("threads", "threads", "{}"),
    ("status", "status", "{}"),
    ("p50_s", "p50 s", "{:.3f}"), ("p95_s", "p95 s", "{:.3f}"), ("rtf", "RTF", "{:.4f}"), ("rtfx", "RTFx", "{:.1f}"),
    ("load_s", "load s", "{:.2f}"), ("peak_rss_mb", "peak RSS MB", "{:.0f}"),
    ("container_peak_mb", "container peak MB", "{:.0f}"),
    ("wer", "WER %", "pct"), ("cer", "CER %", "pct"), ("wer_vs_baseline", "WER vs baseline %", "pct"),
    ("accuracy_gate", "accuracy gate", "{}"), ("speedup", "speed-up", "{:.2f}x"),
    ("efficiency", "efficiency", "pct0"), ("audio_h_per_core_h", "audio h / core h", "{:.1f}"),
    ("decoding_diff", "decoding differs", "{}"), ("error", "error", "{}"),
]
CSV_EXTRA = ["sut", "shape", "cell", "memory_gb", "cpuset", "n_files", "n_ok", "failures", "mean_s",
             "total_audio_s", "processing_s", "host_wall_s", "harness_overhead_s", "container_overhead_s"]


def fmt(value, spec: str) -> str:
    if value is None or value == "":
        return ""
    if spec == "pct":
        return f"{100 * value:.2f}"
    if spec == "pct0":
        return f"{100 * value:.0f}%"
    try:
        return spec.format(value)
    except (ValueError, TypeError):
        return str(value)


def markdown_table(rows: list[dict], columns=COLUMNS) -> str:
    used = [c for c in columns if any(r.get(c[0]) not in (None, "") for r in rows)] or columns[:1]
    body = [[fmt(r.get(key), spec).replace("|", "\\|") for key, _, spec in used] for r in rows]
    return tabulate(body, headers=[h for _, h, _ in used], tablefmt="github", disable_numparse=True) + "\n"


def csv_text(rows: list[dict]) -> str:
    keys = [c[0] for c in COLUMNS] + CSV_EXTRA
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in keys})
    return buf.getvalue()


def write_tables(results: Path, rows: list[dict]) -> list[Path]:
    written = []
    shapes: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        shapes.setdefault((row["sut"], row["shape"]), []).append(row)
    for (sut, shape), group in shapes.items():
        folder = results / sut / shape
        title = f"# {sut} / {shape}\n\n"
        write_atomic(folder / "summary_table.md", title + markdown_table(group), only_if_changed=True)
        write_atomic(folder / "summary_table.csv", csv_text(group), only_if_changed=True)
        written += [folder / "summary_table.md", folder / "summary_table.csv"]
    write_atomic(results / "merged.csv", csv_text(rows), only_if_changed=True)
    written.append(results / "merged.csv")
    return written
