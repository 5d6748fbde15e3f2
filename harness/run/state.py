"""The harness's own per-user state folder: engine locks and the containers' fresh output folders.

It sits at a fixed place in the user's home (from the password database, so neither TMPDIR nor HOME
moves it between two harnesses of one user): `~/.local/state/whisper-bench/`, mode 0700, owned by the
user. A folder there that is a link or belongs to someone else is refused with one line.
"""
from __future__ import annotations

import os
import pwd
import stat
from pathlib import Path

from ..errors import UserError

STATE_SUBDIR = Path(".local") / "state" / "whisper-bench"


def home() -> Path:
    return Path(pwd.getpwuid(os.getuid()).pw_dir)


def private_dir(path: Path) -> Path:
    """Create path (0700) if needed; refuse one that is a link, not a folder, or not the user's own."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = os.lstat(path)
    except OSError as exc:
        raise UserError(f"cannot create the harness's state folder {path}: {exc.strerror or exc}") from None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise UserError(f"{path} is not a folder of this user (uid {os.getuid()}): remove it and run again")
    if stat.S_IMODE(st.st_mode) & 0o077:
        os.chmod(path, 0o700)
    return path


def state_dir(sub: str | None = None) -> Path:
    root = private_dir(home() / STATE_SUBDIR)
    return private_dir(root / sub) if sub else root
