"""The one column registry: every column's key, header, format and the outputs that show it.

Outputs: "table" (summary_table.md), "csv" (summary_table.csv and merged.csv, full precision),
"discovery" (the ranking of model builds, discovery.{md,csv}), "fleet" (RESULTS.md's table across SUTs).
RESULTS.md's leaderboard is rendered from answer.json (report/answer.py, report/verdict_text.py).
Adding a column is one line here (and its value in evidence/rows.py); a measurement's column comes from
evidence/measurements.py.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..evidence.measurements import MEASUREMENTS

TABLE, CSV, DISCOVERY, FLEET = "table", "csv", "discovery", "fleet"
ALL = frozenset({TABLE, CSV})


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    fmt: str = "{}"
    outputs: frozenset = ALL


def _only(*outputs: str) -> frozenset:
    return frozenset(outputs)


COLUMNS = [
    Column("rank", "rank", outputs=_only(DISCOVERY)),
    Column("build", "build", outputs=_only(DISCOVERY)),
    Column("how", "how it was made", outputs=_only(DISCOVERY)),
    Column("targets", "instruction set", outputs=_only(DISCOVERY)),
    Column("sut", "SUT", outputs=_only(CSV, FLEET)),
    Column("shape", "container", outputs=_only(CSV)),
    Column("cell", "engine-model-variant", outputs=_only(CSV, FLEET)),
    Column("engine", "engine", outputs=_only(TABLE, CSV)),
    Column("model", "model", outputs=_only(TABLE, CSV)),
    Column("variant", "variant", outputs=_only(TABLE, CSV)),
    Column("precision", "precision", outputs=_only(TABLE, CSV)),
    Column("cores", "cores (logical CPUs)", outputs=_only(TABLE, CSV, DISCOVERY, FLEET)),
    Column("threads", "threads", outputs=_only(TABLE, CSV)),
    Column("memory_gb", "memory GiB", outputs=_only(CSV)),
    Column("cpuset", "CPU set", outputs=_only(CSV)),
    Column("corpus_id", "corpus", outputs=_only(CSV)),
    Column("status", "status", outputs=ALL | {DISCOVERY}),
    Column("n_rounds", "rounds"),
    Column("rtf", "RTF (geometric mean of runs)", "{:.4f}", outputs=ALL | {DISCOVERY, FLEET}),
    Column("rtf_ci_low", "RTF 95% low", "{:.4f}", outputs=ALL | {DISCOVERY}),
    Column("rtf_ci_high", "RTF 95% high", "{:.4f}", outputs=ALL | {DISCOVERY}),
    Column("rtf_min", "RTF min", "{:.4f}", _only(TABLE, CSV)),
    Column("rtf_cv_pct", "CV %", "{:.1f}"),
    Column("noisy", "noisy (CV > 5 %)", outputs=_only(TABLE, CSV)),
    Column("loaded", "ran under load"),
    Column("rtfx", "RTFx", "{:.1f}"),
    *(Column(m.key, m.header, m.fmt, frozenset(m.outputs)) for m in MEASUREMENTS),
    Column("wer", "WER %", "pct", outputs=ALL | {DISCOVERY}),
    Column("cer", "CER %", "pct", _only(TABLE, CSV)),
    Column("wer_whisper", "WER % (Whisper normaliser)", "pct"),
    Column("cer_whisper", "CER % (Whisper normaliser)", "pct", _only(TABLE, CSV)),
    Column("wer_vs_baseline", "WER vs baseline %", "pct", outputs=ALL | {DISCOVERY}),
    Column("accuracy_gate", "gate", outputs=ALL | {DISCOVERY}),
    Column("speedup", "speed-up", "{:.2f}x"),
    Column("efficiency", "efficiency", "pct0"),
    Column("scaling_base", "speed-up base", outputs=_only(TABLE, CSV)),
    Column("audio_h_per_core_h", "audio h / core h", "{:.1f}", outputs=ALL | {FLEET}),
    Column("price_per_core_hour", "price / core h", "{:g}", _only(CSV)),
    Column("cost_per_audio_h", "cost / audio h", "{:.4f}", _only(TABLE, CSV, FLEET)),
    Column("decoding_diff", "decoding differs (applied)"),
    Column("notes", "engine notes", outputs=_only(TABLE, CSV)),
    Column("versions_text", "engine versions", outputs=_only(TABLE, CSV)),
    Column("image_id", "image", outputs=_only(TABLE, CSV)),
    Column("n_files", "files", outputs=_only(CSV)),
    Column("n_ok", "files ok", outputs=_only(CSV)),
    Column("failures", "failed files", outputs=_only(CSV)),
    Column("size_mb", "size MB", "{:.0f}", _only(DISCOVERY)),
    Column("vs_reference", "time vs faster-whisper int8 (95 %)", outputs=_only(DISCOVERY)),
    Column("error", "error", outputs=_only(TABLE, CSV, DISCOVERY)),
]


def columns_for(output: str) -> list[Column]:
    return [c for c in COLUMNS if output in c.outputs]


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
