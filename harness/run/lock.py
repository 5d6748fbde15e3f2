"""One harness per Docker engine: a lock held for the whole run, and leftovers of a killed one removed.

The lock is an flock on a file named after the Docker engine's ID, so two clones, two users or two
SUT names on one machine still exclude each other, and a killed harness releases it with its process.
"""
from __future__ import annotations

import fcntl
import json
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from ..errors import UserError
from .container import LABEL

LOCK_DIR = Path(os.environ.get("WHISPER_BENCH_LOCK_DIR", tempfile.gettempdir()))


def lock_path(engine_id: str) -> Path:
    return LOCK_DIR / f"whisper-bench-{engine_id.replace(':', '')[:32]}.lock"


@contextmanager
def harness_lock(client, sut: str):
    engine_id = client.info().get("ID") or "docker"
    path = lock_path(engine_id)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(path)
            raise UserError(f"another harness is using this Docker engine (pid {holder.get('pid', '?')}, SUT "
                            f"{holder.get('sut', '?')}, started {holder.get('started', '?')}): wait for it to "
                            f"finish or stop it; two at once would share CPUs and both measure wrong") from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "sut": sut,
                                 "started": time.strftime("%Y-%m-%d %H:%M:%S")}).encode())
        remove_leftovers(client)
        yield
    finally:
        os.close(fd)  # releases the flock


def _holder(path: Path) -> dict:
    try:
        return json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}


def remove_leftovers(client) -> list[str]:
    """Benchmark containers (by label) that a killed harness left: with the lock held, none is ours."""
    removed = []
    for container in client.containers.list(all=True, filters={"label": LABEL}):
        name = container.labels.get(LABEL, container.name)
        container.remove(force=True)
        removed.append(name)
        print(f"removed a benchmark container left by an earlier harness: {container.short_id} ({name})",
              file=sys.stderr)
    return removed
