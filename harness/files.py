"""Result files on the host: atomic writes (temporary name, then rename) and tolerant JSON reads.

`engines/` keeps its own writer: it runs in containers where the harness is not installed.
"""
from __future__ import annotations

import json
from pathlib import Path


def write_atomic(path: Path, data: str | bytes, only_if_changed: bool = False) -> bool:
    """Write data to path so that a reader never sees half a file; with only_if_changed, leave an
    identical file untouched (a report run twice rewrites nothing). True when the file was written."""
    raw = data.encode() if isinstance(data, str) else data
    if only_if_changed and path.is_file() and path.read_bytes() == raw:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(raw)
    tmp.replace(path)
    return True


def write_json(path: Path, data) -> None:
    write_atomic(path, json.dumps(data, indent=2) + "\n")


def read_json(path: Path):
    """The parsed file, or None when it is missing or not (yet) valid JSON."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
