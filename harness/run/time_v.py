"""Parse the report `/usr/bin/time -v` writes (time.txt) into named numbers."""
from __future__ import annotations

import re
from pathlib import Path

# time -v label -> (key, converter)
FIELDS = {
    "User time (seconds)": ("user_s", float),
    "System time (seconds)": ("system_s", float),
    "Percent of CPU this job got": ("cpu_percent", lambda v: float(v.rstrip("%") or 0)),
    "Elapsed (wall clock) time (h:mm:ss or m:ss)": ("elapsed_s", None),
    "Maximum resident set size (kbytes)": ("max_rss_kb", int),
    "Major (requiring I/O) page faults": ("major_page_faults", int),
    "Minor (reclaiming a frame) page faults": ("minor_page_faults", int),
    "Voluntary context switches": ("voluntary_context_switches", int),
    "Involuntary context switches": ("involuntary_context_switches", int),
    "File system inputs": ("fs_inputs", int),
    "File system outputs": ("fs_outputs", int),
    "Exit status": ("exit_status", int),
}


def parse_elapsed(text: str) -> float:
    """'1:02:03.5' or '2:03.50' -> seconds."""
    seconds = 0.0
    for part in text.strip().split(":"):
        seconds = seconds * 60 + float(part)
    return seconds


def parse_time_v(text: str) -> dict:
    out: dict = {}
    for line in text.splitlines():
        line = line.strip()
        signal = re.match(r"Command terminated by signal (\d+)", line)
        if signal:
            out["terminated_by_signal"] = int(signal.group(1))
            continue
        label, sep, value = line.rpartition(": ")
        if not sep or label not in FIELDS:
            continue
        key, convert = FIELDS[label]
        try:
            out[key] = parse_elapsed(value) if convert is None else convert(value)
        except ValueError:
            continue
    if "max_rss_kb" in out:
        out["max_rss_mb"] = out["max_rss_kb"] / 1024
    return out


def read_time_file(path: Path) -> dict | None:
    return parse_time_v(path.read_text(errors="replace")) if path.is_file() else None
