"""Result files on the host: atomic writes (temporary name, then rename) and tolerant reads.

`engines/` keeps its own writer: it runs in containers where the harness is not installed.
"""
from __future__ import annotations

import json
from pathlib import Path

from .errors import UserError


class ResultsWriteError(UserError):
    """A results file could not be written (a full disk, a read-only folder): one line naming the folder."""


def write_atomic(path: Path, data: str | bytes, only_if_changed: bool = False) -> bool:
    """Write data to path so that a reader never sees half a file and a failed write leaves nothing
    behind; with only_if_changed, leave an identical file untouched. True when the file was written."""
    raw = data.encode() if isinstance(data, str) else data
    if only_if_changed and path.is_file() and path.read_bytes() == raw:
        return False
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(raw)
        tmp.replace(path)
    except OSError as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise ResultsWriteError(f"cannot write results to {path.parent}: {exc.strerror or exc}; "
                                f"earlier results there are unchanged") from None
    return True


def write_json(path: Path, data) -> None:
    write_atomic(path, json.dumps(data, indent=2) + "\n")


def read_json(path: Path):
    """The parsed file, or None when it is missing or not (yet) valid JSON."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def read_jsonl(path: Path) -> list:
    """Every complete JSON line (a line cut short by a crash is skipped)."""
    out = []
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
    except OSError:
        pass
    return out


def count_lines(path: Path) -> int:
    try:
        with open(path, "rb") as f:
            return sum(1 for line in f if line.endswith(b"\n"))
    except OSError:
        return 0
