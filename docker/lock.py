"""Write docker/locks/<group>.txt: every Python distribution an engine image installs, pinned with its sha256.

    python3 docker/lock.py [GROUP ...]     (default: every engine-* group of pyproject.toml)

The image build installs a group from its lock with `pip install --require-hashes --no-deps`, so an image
built next month gets the same files, byte for byte, or fails naming the one that changed. The lock is
what pip's own resolver picks for the images' platform (Debian bookworm's CPython 3.11 on x86_64), read
from `pip install --dry-run --report` (no package is installed): the group's requirements as
docker/requirements.py prints them (torch first, from its wheel index), then the group's no-deps packages.
This host's pip configuration (local mirrors, constraints) is left out, as the image's pip never sees it.
Re-run after changing a pin in pyproject.toml; a build on another architecture installs without the lock.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
PYPROJECT = HERE.parent / "pyproject.toml"
LOCKS = HERE / "locks"
# bookworm's glibc is 2.36: every manylinux tag up to it (pip does not expand one tag into the older ones)
PLATFORM = (*(arg for minor in range(36, 16, -1) for arg in ("--platform", f"manylinux_2_{minor}_x86_64")),
            "--platform", "manylinux2014_x86_64", "--platform", "linux_x86_64",
            "--python-version", "3.11", "--implementation", "cp")
HOST_CA = "/etc/ssl/certs/ca-certificates.crt"


def requirements(mode: list[str], group: str) -> list[str]:
    out = subprocess.run([sys.executable, str(HERE / "requirements.py"), *mode, group], capture_output=True,
                         text=True, check=True).stdout
    return [line for line in out.splitlines() if line.strip()]


def resolve(lines: list[str], no_deps: bool) -> list[dict]:
    """What pip would install for these requirement lines on the images' platform: name, version, sha256."""
    env = {**os.environ, "PIP_CONFIG_FILE": os.devnull}  # not this host's mirrors and constraints
    if os.path.exists(HOST_CA):
        env["PIP_CERT"] = HOST_CA
    with tempfile.TemporaryDirectory() as tmp:
        reqs, report = Path(tmp) / "requirements.txt", Path(tmp) / "report.json"
        reqs.write_text("\n".join(lines) + "\n")
        # pip takes --platform only with --no-deps or with wheels alone; a group that compiles a package from
        # source is resolved for this host, which has to be the images' platform then
        no_binary = any(ln.startswith("--no-binary ") for ln in lines)
        platform = [] if no_binary and not no_deps else [*PLATFORM, "--target", str(Path(tmp) / "t")]
        binary = ["--only-binary=:all:"] if not no_binary and not no_deps else []
        cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
               "--disable-pip-version-check", *platform, *binary,
               *(["--no-deps"] if no_deps else []), "--report", str(report), "-r", str(reqs)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise SystemExit(f"error: pip could not resolve {lines}: {proc.stderr.strip().splitlines()[-1:]}")
        installs = json.loads(report.read_text())["install"]
    out = []
    for item in installs:
        archive = item["download_info"].get("archive_info", {})
        digest = (archive.get("hashes") or {}).get("sha256") or archive.get("hash", "").partition("=")[2]
        if not digest:
            raise SystemExit(f"error: no sha256 for {item['metadata']['name']} from {item['download_info']['url']}")
        out.append({"name": item["metadata"]["name"], "version": item["metadata"]["version"], "sha256": digest})
    return out


def lock_text(group: str) -> str:
    torch = requirements(["--torch"], group)
    main = requirements([], group)
    options = [ln for ln in torch + main if ln.startswith("--")]
    pins = resolve(options + [ln for ln in torch + main if not ln.startswith("--")], no_deps=False)
    no_deps = requirements(["--no-deps"], group)
    extra = resolve(no_deps, no_deps=True) if no_deps else []
    lines = [f"# {group}: written by docker/lock.py from pyproject.toml; install with --require-hashes --no-deps",
             *options]
    for pin in sorted(pins + extra, key=lambda p: p["name"].lower()):
        lines.append(f"{pin['name']}=={pin['version']} --hash=sha256:{pin['sha256']}")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    groups = tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]
    chosen = argv or [g for g in groups if g.startswith("engine-")]
    LOCKS.mkdir(exist_ok=True)
    for group in chosen:
        text = lock_text(group)
        (LOCKS / f"{group}.txt").write_text(text)
        print(f"{group}: {sum(1 for ln in text.splitlines() if '--hash=' in ln)} distributions locked")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
