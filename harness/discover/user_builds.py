"""`discover --variants DIR`: the user's own ort builds taken into the store's variants/, never following
or changing a user's links or files."""
from __future__ import annotations

import errno
import json
import os
import shutil
import stat
from pathlib import Path

from engines.registry import BUILD_FILE, BUILDS_DIR


def import_user_builds(variants_dir: Path, model_dir: Path, log=print) -> dict[str, dict]:
    """Each folder under variants_dir becomes `user-<folder>` in the store, with a variant.json when it has
    none. Only regular files are taken: a link (to a folder or a file) is skipped with a line and never
    followed, and the user's files are never changed (hard-linked when already readable by everyone on the
    same file system, else copied). Nothing else is checked here: a folder `ort` cannot load is a failed
    row of the ranking, with its reason."""
    out = {}
    for folder in sorted(variants_dir.iterdir()):
        if folder.is_symlink() or not folder.is_dir():
            if folder.is_symlink():
                log(f"{folder}: skipped: a link (builds are taken from real folders only)")
            continue
        name = folder.name if folder.name.startswith("user-") else f"user-{folder.name}"
        dst = model_dir / BUILDS_DIR / name
        if dst.resolve() != folder.resolve():
            shutil.rmtree(dst, ignore_errors=True)
            dst.mkdir(parents=True)
            for file in sorted(folder.iterdir()):
                problem = _take_file(file, dst / file.name)
                if problem:
                    log(f"build {name}: {file.name} skipped: {problem}")
        info = json.loads((dst / BUILD_FILE).read_text()) if (dst / BUILD_FILE).is_file() else {}
        info = {"how": "the user's own build", "targets": "unknown (the user's build)", **info,
                "name": name, "origin": f"user: {folder.name}",
                "size_mb": round(sum(p.stat().st_size for p in dst.iterdir() if p.is_file()) / 1e6, 1)}
        (dst / BUILD_FILE).unlink(missing_ok=True)  # a hard link to the user's own file: never write through it
        (dst / BUILD_FILE).write_text(json.dumps(info, indent=1) + "\n")
        log(f"build {name}: taken from {folder}")
        out[name] = info
    return out


def _take_file(src: Path, dst: Path) -> str | None:
    """One of the user's files into the store, never through a link; what stood in the way, or None."""
    try:
        fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        return "a link (never followed)" if exc.errno == errno.ELOOP else (exc.strerror or str(exc))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        if st.st_mode & 0o444 == 0o444:  # the containers can read it as it is: share it, change nothing
            try:
                os.link(f"/proc/self/fd/{fd}", dst, follow_symlinks=True)
                return None
            except OSError:
                pass  # another file system (or no /proc): a copy
        with os.fdopen(os.dup(fd), "rb") as source, open(dst, "xb") as target:
            shutil.copyfileobj(source, target, 1 << 22)
        os.chmod(dst, 0o644)  # the store's own copy
        return None
    finally:
        os.close(fd)
