"""One harness per Docker engine: a lock held for the whole run, and leftovers of a killed one removed.

The lock names the Docker engine, so two clones or two SUT names on one machine still exclude each other,
and a killed harness releases it with its process. It has two parts:
- an flock on a file in the user's own state folder (harness/run/state.py: a fixed place, mode 0700, so
  neither TMPDIR nor another user can move, plant or block it), which also records the holder (pid, SUT,
  start) for the one line a second harness of the same user prints;
- an abstract Unix socket named after the engine, bound while the lock is held: no file, so no permission
  to fight over, gone with its process, and one that every user on the host sees. A harness of another
  user finds it bound and learns its holder's uid and pid from the kernel (SO_PEERCRED).
The engine's ID alone does not name it: dockerd 20.10 takes it from /etc/docker/key.json, which a second
daemon on the same host shares, and so do VMs cloned from one image; its host name and data root tell
those apart.

Every container and volume the harness creates carries this controller's id (a random id kept in the
state folder); leftover clean-up removes only those, never another controller's on a shared engine.
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import pwd
import secrets
import socket
import struct
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from ..errors import UserError
from ..files import read_bytes, write_atomic
from .labels import CONTROLLER_LABEL, LABEL
from .state import state_dir

LOCKS = "locks"                   # the state folder's sub-folder of engine locks
CONTROLLER_FILE = "controller-id"
BUSY = "two at once would share CPUs and both measure wrong"


def engine_key(info: dict) -> str:
    engine = "|".join(str(info.get(key) or "") for key in ("ID", "Name", "DockerRootDir"))
    return hashlib.sha256(engine.encode()).hexdigest()[:24]


def lock_path(info: dict) -> Path:
    """The lock file of the engine that `docker info` describes."""
    return state_dir(LOCKS) / f"engine-{engine_key(info)}.lock"


def controller_id() -> str:
    """This controller's id (one per user and machine), made once and kept in the state folder."""
    path = state_dir() / CONTROLLER_FILE
    raw = read_bytes(path, 64)
    if raw and raw.strip().isalnum():
        return raw.strip().decode()
    new = secrets.token_hex(8)
    write_atomic(path, new + "\n")
    return new


@contextmanager
def harness_lock(client, sut: str):
    info = client.info()
    path = lock_path(info)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    beacon = None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(path)
            raise UserError(f"another harness is using this Docker engine (pid {holder.get('pid', '?')}, SUT "
                            f"{holder.get('sut', '?')}, started {holder.get('started', '?')}): wait for it to "
                            f"finish or stop it; {BUSY}") from None
        beacon = _bind_beacon(engine_key(info))
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "sut": sut,
                                 "started": time.strftime("%Y-%m-%d %H:%M:%S")}).encode())
        from .outputs import remove_stale_output_dirs

        remove_stale_output_dirs()
        remove_leftovers(client)
        yield
    finally:
        if beacon is not None:
            beacon.close()
        os.close(fd)  # releases the flock


def _bind_beacon(key: str) -> socket.socket:
    """Bind the engine's abstract socket, or say whose harness holds it."""
    name = f"\0whisper-bench-engine-{key}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(name)
        sock.listen(8)
        return sock
    except OSError as exc:
        sock.close()
        if exc.errno != errno.EADDRINUSE:
            raise
    pid, uid = _peer(name)
    raise UserError(f"another user's harness is using this Docker engine (user {_user_name(uid)}, pid {pid}): "
                    f"wait for it to finish or ask them to stop it; {BUSY}")


def _peer(name: str) -> tuple[str, str | int]:
    """The pid and uid of the process that bound the abstract socket, from the kernel."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(name)
        pid, uid, _ = struct.unpack("3i", probe.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                            struct.calcsize("3i")))
        return str(pid), uid
    except OSError:
        return "?", "?"
    finally:
        probe.close()


def _user_name(uid) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except (KeyError, TypeError):
        return f"uid {uid}"


def _holder(path: Path) -> dict:
    try:
        data = json.loads(read_bytes(path, 4096) or b"{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def remove_leftovers(client) -> list[str]:
    """Benchmark and helper containers and results volumes that this controller's killed harness left (with
    the lock held, none is running for us); another controller's, on a shared engine, are left alone."""
    mine = f"{CONTROLLER_LABEL}={controller_id()}"
    removed = []
    for container in client.containers.list(all=True, filters={"label": mine}):
        name = container.labels.get(LABEL, container.name)
        container.remove(force=True)
        removed.append(name)
        print(f"removed a benchmark container left by an earlier harness: {container.short_id} ({name})",
              file=sys.stderr)
    for volume in client.volumes.list(filters={"label": [LABEL, mine]}):
        try:
            volume.remove(force=True)
        except Exception:  # in use by a container of ours that is going away: the next start removes it
            continue
    return removed
