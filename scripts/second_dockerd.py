"""A second Docker engine on this machine, for the fleet's test and its timing script: its own socket, data
root, exec root and bridge.

Not `--bridge none`: a daemon started so removes the host's docker0, which the first engine's builds need.
"""
from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import time
from pathlib import Path

BRIDGE = "wbench-test0"
BRIDGE_ADDRESS = "172.31.251.1/24"


def available() -> str | None:
    """None when a second engine can be started here, else why not."""
    missing = [tool for tool in ("dockerd", "ip") if not shutil.which(tool)]
    return f"{' and '.join(missing)} not installed" if missing else None


@contextlib.contextmanager
def second_dockerd(root: Path, hosts: tuple[str, ...] = ()):
    """Yields (socket path, the daemon's process); stops it and removes its bridge and folders after. `hosts`:
    more addresses it listens on (-H), e.g. a plain tcp:// one for the fleet's transport test."""
    root.mkdir(parents=True, exist_ok=True)
    socket = root / "docker.sock"
    subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True)
    for cmd in (["ip", "link", "add", BRIDGE, "type", "bridge"], ["ip", "addr", "add", BRIDGE_ADDRESS, "dev", BRIDGE],
                ["ip", "link", "set", BRIDGE, "up"]):
        subprocess.run(cmd, check=True, capture_output=True)
    with open(root / "dockerd.log", "w") as log:
        proc = subprocess.Popen(["dockerd", "--data-root", str(root / "data"), "--exec-root", str(root / "exec"),
                                 "-H", f"unix://{socket}", *(f"-H{h}" for h in hosts),
                                 "--pidfile", str(root / "dockerd.pid"), "--bridge", BRIDGE,
                                 "--iptables=false", "--ip-masq=false"], stdout=log, stderr=log)
    try:
        for _ in range(100):
            if socket.exists():
                break
            time.sleep(0.1)
        if not socket.exists():
            raise RuntimeError("the second dockerd did not start: " + (root / "dockerd.log").read_text()[-2000:])
        yield socket, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
        subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True)
        subprocess.run(["umount", str(root / "data")], capture_output=True)  # dockerd's own mount of its root
        shutil.rmtree(root, ignore_errors=True)
