"""The measurements a run yields beside its RTF, each declared once: where it is read (the engine's summary
or the host's run.json), its unit, how a cell's runs reduce to its row's value, and its column.

Adding a measurement: the engine (or the host) writes it, and one line here; records.py, rows.py and the
column registry read this list. The statistics of the answer itself (runs, RTF, intervals, accuracy) are
not here: they have their own code in this package.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass

MIB = 2**20
SUMMARY, RUN = "summary", "run"


@dataclass(frozen=True)
class Measurement:
    key: str                       # the round entry's, the row's and the column's key
    sources: tuple                 # ((SUMMARY | RUN, "dotted.path"), ...): the first present wins
    reduce: str                    # over the cell's runs: median (timed runs) or max (every run)
    header: str
    fmt: str = "{}"
    outputs: tuple = ("table", "csv")
    divide: float = 1.0            # e.g. bytes -> MiB

    def read(self, summary: dict, run: dict):
        for where, path in self.sources:
            value = summary if where == SUMMARY else run
            for part in path.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            if value is not None and value != 0:
                return value / self.divide if self.divide != 1.0 else value
        return None


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _max(values):
    values = [v for v in values if v is not None]
    return max(values) if values else None


REDUCERS = {"median": _median, "max": _max}

MEASUREMENTS = [
    Measurement("p50_s", ((SUMMARY, "end_to_end_s.p50"),), "median", "p50 s", "{:.3f}"),
    Measurement("max_file_s", ((SUMMARY, "end_to_end_s.max"),), "median", "longest file s", "{:.3f}"),
    Measurement("mean_s", ((SUMMARY, "end_to_end_s.mean"),), "median", "mean s", "{:.3f}", ("csv", "discovery")),
    Measurement("load_s", ((SUMMARY, "model_load_s"),), "median", "load s", "{:.2f}", ("table", "csv", "discovery")),
    Measurement("peak_rss_mib", ((RUN, "time_v.max_rss_mb"), (SUMMARY, "peak_rss_mb")), "max",
                "engine peak RSS MiB (time -v)", "{:.0f}", ("table", "csv", "discovery")),
    Measurement("container_peak_mib", ((RUN, "cgroup_peak_bytes"),), "max",
                "container peak MiB (cgroup, cold page cache)", "{:.0f}", divide=MIB),
    Measurement("container_anon_mib", ((RUN, "cgroup_anon_bytes"),), "max", "container anon MiB (end)", "{:.0f}",
                divide=MIB),
    Measurement("total_audio_s", ((SUMMARY, "total_audio_s"),), "median", "audio s", outputs=("csv",)),
    Measurement("processing_s", ((SUMMARY, "total_processing_s"),), "median", "processing s", outputs=("csv",)),
    Measurement("host_wall_s", ((RUN, "host_wall_s"),), "median", "host wall s", outputs=("csv",)),
    Measurement("harness_overhead_s", ((RUN, "harness_overhead_s"),), "median", "harness overhead s",
                outputs=("csv",)),
    Measurement("container_overhead_s", ((RUN, "container_overhead_s"),), "median", "container start+stop s",
                outputs=("csv",)),
]


def round_values(summary: dict, run: dict) -> dict:
    return {m.key: m.read(summary, run) for m in MEASUREMENTS}


def reduce_rounds(timed: list[dict], every: list[dict]) -> dict:
    """A row's values: medians over the timed runs, maxima (memory) over every run."""
    return {m.key: REDUCERS[m.reduce](r.get(m.key) for r in (timed if m.reduce == "median" else every))
            for m in MEASUREMENTS}
