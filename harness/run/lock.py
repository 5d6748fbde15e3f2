"""One harness per Docker engine: a lock held for the whole run, and leftovers of a killed one removed.

The lock is an flock on a file named after the Docker engine, so two clones, two users or two SUT names on
one machine still exclude each other, and a killed harness releases it with its process. The engine's ID
alone does not name it: dockerd 20.10 takes it from /etc/docker/key.json, which a second daemon on the same
host shares, and so do VMs cloned from one image; its host name and data root tell those apart.
"""
from __future__ import annotations

import fcntl
import hashlib
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


def lock_path(info: dict) -> Path:
    """The lock file of the engine that `docker info` describes."""
    engine = "|".join(str(info.get(key) or "") for key in ("ID", "Name", "DockerRootDir"))
    return LOCK_DIR / f"whisper-bench-{hashlib.sha256(engine.encode()).hexdigest()[:24]}.lock"


@contextmanager
def harness_lock(client, sut: str):
    path = lock_path(client.info())
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
