"""Putting a freshly built model folder in place without ever losing the builds under its variants/.

`variants/` holds discover's builds and the user's own; a rebuilt store must carry them over. Every step
here is a rename, and the old folder is deleted only once it no longer holds builds, so whatever stops a
prepare part-way (an error, SIGINT, a full disk, SIGKILL), the builds are either in the store or in the
old folder `.old-whisper-<name>-<pid>/`, which the next prepare of that model puts back (`recover`). The
folder being built never holds builds, so deleting it on failure deletes nothing of the user's.

Two prepares of one model are serialised by an flock on `models/.prepare-whisper-<name>.lock`: the
second waits for the first, then finds its work done (or rebuilds under --force).
"""
from __future__ import annotations

import fcntl
import os
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path

from engines.registry import BUILDS_DIR


def old_dir(models_dir: Path, name: str) -> Path:
    return models_dir / f".old-whisper-{name}-{os.getpid()}"


@contextmanager
def prepare_lock(models_dir: Path, name: str):
    path = models_dir / f".prepare-whisper-{name}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            print(f"[{name}] another prepare of this model is running (pid {holder}): waiting for it", flush=True)
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the flock


def install(work: Path, final: Path, models_dir: Path, name: str) -> None:
    """Replace `final` by `work`, carrying final/variants/ across."""
    if not final.exists():
        work.rename(final)
        return
    old = old_dir(models_dir, name)
    final.rename(old)           # stopped after this: `recover` renames old back
    work.rename(final)          # after this: `recover` moves old/variants into the new store
    _carry_builds(old, final)
    shutil.rmtree(old)          # holds no builds any more


def _carry_builds(old: Path, final: Path) -> bool:
    """old/variants/ into final/; False when final already has its own (both are then kept)."""
    builds = old / BUILDS_DIR
    if not builds.is_dir() or builds.is_symlink():
        return True
    if (final / BUILDS_DIR).exists():
        return False
    builds.rename(final / BUILDS_DIR)
    return True


def recover(models_dir: Path, name: str, final: Path) -> None:
    """Finish what an interrupted prepare of this model left (called with the prepare lock held, so no
    other prepare of it is running): its old folder goes back in place, or gives its builds to the new one."""
    for old in sorted(models_dir.glob(f".old-whisper-{name}-*")):
        if not old.is_dir() or old.is_symlink():
            continue
        if not final.exists():
            old.rename(final)
            print(f"{final}: put back from an interrupted prepare ({old.name})", flush=True)
            continue
        if _carry_builds(old, final):
            shutil.rmtree(old)
        else:
            print(f"{final}: the builds of an interrupted prepare are kept in {old} (the store has its own "
                  f"{BUILDS_DIR}/): move what you need, then remove it", file=sys.stderr)


__all__ = ["install", "prepare_lock", "recover"]
