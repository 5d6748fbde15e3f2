"""Result files on the host: atomic writes and bounded, link-safe reads.

Writes go to a unique temporary name (`mkstemp`, so nothing planted under a fixed name can be written
through), are fsynced, then renamed over the target (a rename replaces a link, never follows it). Reads
open with O_NOFOLLOW and O_NONBLOCK, check that what was opened is a regular file (a FIFO would block a
plain open for ever) and read at most a size limit.

`engines/` keeps its own writer: it runs in containers where the harness is not installed.
"""
from __future__ import annotations

import json
import os
import stat
import tempfile
from pathlib import Path

from .errors import UserError

FILE_MODE = 0o644
MAX_JSON_BYTES = 64 << 20       # a results JSON larger than this is not read (a run's files are ~MBs)
READ_BLOCK = 1 << 20


class ResultsWriteError(UserError):
    """A results file could not be written (a full disk, a read-only folder): one line naming the folder."""


class NotRegularFile(OSError):
    """A path that is a link, a FIFO, a device or a folder where a regular file was expected, or too large."""


def write_atomic(path: Path, data: str | bytes, only_if_changed: bool = False) -> bool:
    """Write data to path so that a reader never sees half a file and a failed write leaves nothing
    behind; with only_if_changed, leave an identical file untouched. True when the file was written."""
    raw = data.encode() if isinstance(data, str) else data
    if only_if_changed and read_bytes(path, len(raw) + 1) == raw:
        return False
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fchmod(f.fileno(), FILE_MODE)
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
        _fsync_dir(path.parent)
    except OSError as exc:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        raise ResultsWriteError(f"cannot write results to {path.parent}: {exc.strerror or exc}; "
                                f"earlier results there are unchanged") from None
    return True


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_json(path: Path, data) -> None:
    write_atomic(path, json.dumps(data, indent=2) + "\n")


def open_regular(path: Path | str, dir_fd: int | None = None) -> int:
    """A read-only descriptor of a regular file, never through a link and never blocking on a FIFO;
    NotRegularFile otherwise (the caller closes the descriptor)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise NotRegularFile(f"{path}: not a regular file")
    return fd


def read_bytes(path: Path | str, limit: int, dir_fd: int | None = None) -> bytes | None:
    """The file's bytes when it is a regular file of at most `limit` bytes; None otherwise."""
    try:
        fd = open_regular(path, dir_fd)
    except OSError:
        return None
    try:
        if os.fstat(fd).st_size > limit:
            return None
        chunks, total = [], 0
        while chunk := os.read(fd, min(READ_BLOCK, limit + 1 - total)):
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:  # it grew while being read
                return None
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)


def read_json(path: Path, limit: int = MAX_JSON_BYTES):
    """The parsed file, or None when it is missing, not a regular file, too large or not (yet) valid JSON."""
    raw = read_bytes(path, limit)
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def read_json_object(path: Path, limit: int = MAX_JSON_BYTES) -> dict | None:
    """read_json, when the file holds a JSON object; None for anything else (`[1]`, a number)."""
    data = read_json(path, limit)
    return data if isinstance(data, dict) else None


def read_jsonl(path: Path, limit: int = MAX_JSON_BYTES) -> list:
    """Every complete JSON line (a line cut short by a crash is skipped)."""
    raw = read_bytes(path, limit)
    out = []
    for line in (raw or b"").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def count_lines(path: Path | str, limit: int = MAX_JSON_BYTES, dir_fd: int | None = None) -> int:
    """Complete lines in a regular file, reading at most `limit` bytes; 0 for anything else."""
    try:
        fd = open_regular(path, dir_fd)
    except OSError:
        return 0
    try:
        count, total = 0, 0
        while total < limit and (chunk := os.read(fd, min(READ_BLOCK, limit - total))):
            count += chunk.count(b"\n")
            total += len(chunk)
        return count
    except OSError:
        return 0
    finally:
        os.close(fd)
