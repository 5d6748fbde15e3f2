"""What a container wrote, brought back to the host: regular files only, by base name, with size limits.

Everything a container writes is untrusted. It writes into a fresh place of its own: on the local engine a
private folder of the harness's state folder (mode 0700, owned by the container's user) bind-mounted at
/results, on a remote engine a fresh named volume. The host then copies back the result files the
engines write, by name, into the round folder, which no container can write. A link, a FIFO, a device,
a folder or a file over the size limit under one of those names is refused and named; the host never
follows a link, never opens a FIFO for a blocking read, and never chowns or chmods a container's files.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import stat
import tarfile
import tempfile
from collections import deque
from pathlib import Path

from engines.results import PER_FILE_CSV, PER_FILE_JSON, ROWS_FILE, SUMMARY_FILE
from engines.serve.logs import ACCURACY_LOG, QUERIES_FILE, SERVE_FILES, SERVE_SUMMARY

from ..files import read_bytes, write_atomic
from .state import state_dir

TIME_FILE = "time.txt"
CGROUP_FILE = "cgroup_memory.json"
LOG_FILE = "container.log"
# engines/ort/profile.py's operator profile (ort --profile), named here so the host imports no engine.
PROFILE_FILES = ("ort_profile_ops.csv", "ort_profile_ops.md")
RESULT_NAMES = (SUMMARY_FILE, ROWS_FILE, PER_FILE_JSON, PER_FILE_CSV, TIME_FILE, CGROUP_FILE, *PROFILE_FILES,
                *SERVE_FILES)  # the last: LoadGen's logs and the serving SUT's files (`harness serve`)
# The JSON files the host reads fields from, and the type each must hold (a `[1]` summary is refused).
JSON_SHAPES = {SUMMARY_FILE: dict, CGROUP_FILE: dict, PER_FILE_JSON: list, SERVE_SUMMARY: dict, QUERIES_FILE: dict,
               ACCURACY_LOG: list}
MAX_FILE_BYTES = 64 << 20       # one result file; a 10 h corpus's per-file JSON is a few MB
MAX_TOTAL_BYTES = 256 << 20     # everything one run brings back
LOG_TAIL_LINES = 5000           # container.log: the last lines of the container's output ...
MAX_LOG_BYTES = 4 << 20         # ... at most this many bytes of them
MAX_LOG_READ = 64 << 20         # and no more than this is read from the engine to find them
OUTPUTS = "outputs"             # the state folder's sub-folder of fresh output folders
# Go's os.FileMode type bits (dir, symlink, device, named pipe, socket, char device, irregular): a path
# stat from the Docker API is a regular file when none is set.
GO_MODE_TYPE = (1 << 31) | (1 << 27) | (1 << 26) | (1 << 25) | (1 << 24) | (1 << 21) | (1 << 19)


def fresh_output_dir(owner_uid: int | None, owner_gid: int | None) -> Path:
    """A new private folder for one container's output; given to the container's user when that is not
    the harness's own (the harness runs as root)."""
    path = Path(tempfile.mkdtemp(prefix=f"run-{os.getpid()}-", dir=state_dir(OUTPUTS)))
    if owner_uid is not None and owner_uid != os.getuid():
        os.chown(path, owner_uid, owner_gid)
    return path


def remove_output_dir(path: Path) -> None:
    """shutil.rmtree works through descriptors on Linux: links inside are removed, never followed."""
    shutil.rmtree(path, ignore_errors=True)


def remove_stale_output_dirs() -> None:
    """Output folders of harnesses of this user that are no longer running (killed with SIGKILL)."""
    root = state_dir(OUTPUTS)
    for path in root.iterdir():
        parts = path.name.split("-")
        if len(parts) >= 3 and parts[0] == "run" and parts[1].isdigit() and not _alive(int(parts[1])):
            remove_output_dir(path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a link"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "not a regular file"


class CopyBack:
    """Copies result files into the round folder within the size limits; `refused` names what was not."""

    def __init__(self, run_dir: Path):
        self.run_dir, self.total, self.refused, self.copied = run_dir, 0, [], []

    def room(self) -> int:
        return min(MAX_FILE_BYTES, MAX_TOTAL_BYTES - self.total)

    def too_large(self, name: str, size: int) -> bool:
        if size > self.room():
            self.refused.append(f"{name} ({size} bytes, over the {self.room()}-byte limit)")
            return True
        return False

    def keep(self, name: str, raw: bytes | None) -> None:
        if raw is None:
            self.refused.append(f"{name} (changed while read or unreadable)")
            return
        if name in JSON_SHAPES and not _holds(raw, JSON_SHAPES[name]):
            self.refused.append(f"{name} (not a JSON {'object' if JSON_SHAPES[name] is dict else 'list'})")
            return
        write_atomic(self.run_dir / name, raw)
        self.total += len(raw)
        self.copied.append(name)

    def from_folder(self, out_dir: Path) -> CopyBack:
        """The local engine: read from the container's bind-mounted folder through a descriptor of it."""
        try:
            dir_fd = os.open(out_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            self.refused.append(f"the output folder ({exc.strerror})")
            return self
        try:
            present = set(os.listdir(dir_fd))
            for name in RESULT_NAMES:
                if name not in present:
                    continue
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                if not stat.S_ISREG(st.st_mode):
                    self.refused.append(f"{name} ({_kind(st.st_mode)})")
                elif not self.too_large(name, st.st_size):
                    self.keep(name, read_bytes(name, self.room(), dir_fd=dir_fd))
        finally:
            os.close(dir_fd)
        return self

    def from_container(self, container, folder: str) -> CopyBack:
        """A remote engine: each file through the Docker API's archive endpoint, whose path stat (read before
        the body) says what the path is and how large; links resolve inside the container, if at all."""
        from docker.errors import NotFound

        for name in RESULT_NAMES:
            try:
                stream, st = container.get_archive(f"{folder}/{name}")
            except NotFound:
                continue
            st = st or {}
            mode, size = int(st.get("mode", 1 << 19)), int(st.get("size", 0))
            if mode & GO_MODE_TYPE or st.get("linkTarget"):
                self.refused.append(f"{name} (not a regular file)")
                stream.close()
                continue
            if self.too_large(name, size):
                stream.close()
                continue
            self.keep(name, _one_file_from_tar(stream, name, size))
        return self

    def summary(self) -> str:
        return "refused: " + "; ".join(self.refused) if self.refused else ""


def _holds(raw: bytes, shape: type) -> bool:
    try:
        return isinstance(json.loads(raw), shape)
    except ValueError:
        return False


def _one_file_from_tar(stream, name: str, size: int) -> bytes | None:
    """The single regular member of a path's archive, reading no more than its announced size allows."""
    cap = size + 64 * 1024   # tar headers, padding and the end blocks
    buf, total = io.BytesIO(), 0
    for chunk in stream:
        total += len(chunk)
        if total > cap:
            stream.close()
            return None
        buf.write(chunk)
    buf.seek(0)
    try:
        with tarfile.open(fileobj=buf) as tar:
            member = tar.next()
            if member is None or not member.isfile() or member.size != size or Path(member.name).name != name:
                return None
            with tar.extractfile(member) as src:
                return src.read(size)
    except (tarfile.TarError, OSError):
        return None


def container_log(container) -> bytes:
    """The end of the container's output (stdout and stderr), bounded in lines and bytes."""
    kept: deque[bytes] = deque()
    kept_bytes = read = 0
    try:
        stream = container.logs(stdout=True, stderr=True, stream=True, follow=False, tail=LOG_TAIL_LINES)
        for chunk in stream:
            kept.append(chunk)
            kept_bytes += len(chunk)
            read += len(chunk)
            while kept_bytes > MAX_LOG_BYTES and len(kept) > 1:
                kept_bytes -= len(kept.popleft())
            if read > MAX_LOG_READ:
                stream.close()
                break
    except Exception:  # the engine went away: what was read is what there is
        pass
    return b"".join(kept)[-MAX_LOG_BYTES:]
