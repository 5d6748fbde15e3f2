"""The host's fingerprint (harness/run/host.py records it) as lines for RESULTS.md and discovery.md."""
from __future__ import annotations


def describe(host: dict) -> list[str]:
    """The fingerprint as lines for RESULTS.md."""
    if not host:
        return []
    cpu = host.get("cpu_model") or "unknown CPU"
    isa = ", ".join(host.get("isa") or []) or "no AVX2"
    lines = [f"CPU: {cpu} ({isa}); SMT {'on' if host.get('smt') else 'off' if host.get('smt') is False else 'unknown'}"
             + (f", governor {host['governor']}" if host.get("governor") else "")
             + (f", boost {host['boost']}" if host.get("boost") else "")
             + (f", microcode {host['microcode']}" if host.get("microcode") else ""),
             f"kernel {host.get('kernel')}, transparent huge pages {host.get('transparent_hugepages')}, "
             f"cgroup {host.get('cgroup')}, Docker {host.get('docker')}"]
    if host.get("docker_insecure"):  # a fleet SUT reached without verified TLS: its results could be tampered with
        lines.append(f"INSECURE: its Docker engine was reached over {host['docker_insecure']}")
    if host.get("harness_commit"):
        lines.append(f"harness commit {host['harness_commit']}"
                     + (" (with uncommitted changes)" if host.get("harness_dirty") else ""))
    return lines
