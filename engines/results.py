"""The result contract shared by the runner, the harness and the report: one status vocabulary,
latency statistics built from values, and the per-file row.

The JSON files keep their shape: these types only say once what their fields are.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from enum import Enum

# The engine's result files (the runner writes them; the harness and the report read them).
SUMMARY_FILE = "inference_summary.json"
ROWS_FILE = "inference_per_file.jsonl"      # appended one row per file as it finishes
PER_FILE_JSON = "inference_per_file.json"
PER_FILE_CSV = "inference_per_file.csv"


class Status(str, Enum):
    """Where a run ended. The runner writes the first five; the harness adds what only the host sees."""
    RUNNING = "running"            # the engine's summary before it finished (a crash leaves it so)
    OK = "ok"                      # every file transcribed
    PARTIAL = "partial"            # some files failed, each with its error row
    FAILED = "failed"              # no file transcribed, or the engine exited non-zero
    LOAD_FAILED = "load_failed"    # the model did not load
    OOM = "oom"
    TIMEOUT = "timeout"
    INTERRUPTED = "interrupted"    # SIGINT, SIGTERM or SIGHUP stopped the harness mid-run
    IMAGE_BUILD_FAILED = "image_build_failed"
    INCOMPLETE = "incomplete"      # engine files but no run.json: the harness itself died

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Latency:
    """Distribution of per-file end-to-end seconds (the keys of `end_to_end_s` in the summary)."""
    mean: float | None = None
    p50: float | None = None
    p90: float | None = None
    p95: float | None = None
    p99: float | None = None
    min: float | None = None
    max: float | None = None
    std: float | None = None

    @classmethod
    def from_values(cls, values: list[float]) -> Latency:
        if not values:
            return cls()
        xs = sorted(float(v) for v in values)
        mean = math.fsum(xs) / len(xs)
        return cls(mean=mean, p50=percentile(xs, 50), p90=percentile(xs, 90), p95=percentile(xs, 95),
                   p99=percentile(xs, 99), min=xs[0], max=xs[-1],
                   std=math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / len(xs)))

    def to_dict(self) -> dict:
        return asdict(self)


def percentile(sorted_values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default method), on sorted input."""
    if len(sorted_values) == 1:
        return sorted_values[0]
    pos = (len(sorted_values) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


@dataclass
class FileRow:
    """One file in one repeat: a line of inference_per_file.{jsonl,csv,json}."""
    file: str
    repeat: int
    audio_s: float | None = None
    features_s: float | None = None
    encode_s: float | None = None
    decode_s: float | None = None
    end_to_end_s: float | None = None
    rtf: float | None = None
    n_tokens: int | None = None
    text: str = ""
    error: str = ""

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def to_dict(self) -> dict:
        return asdict(self)
