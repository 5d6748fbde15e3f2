"""The host's fingerprint, recorded in plan.json, every run.json and each RESULTS.md section: what a
reader needs to judge whether two results can be compared."""
from __future__ import annotations

import platform
import subprocess
from pathlib import Path

from ..layout import ROOT

ISA_FLAGS = {"avx2": "AVX2", "avx512f": "AVX-512", "avx512_vnni": "AVX512-VNNI", "avx_vnni": "AVX-VNNI",
             "avx512_bf16": "AVX512-BF16", "amx_tile": "AMX", "amx_bf16": "AMX-BF16", "amx_int8": "AMX-INT8",
             "fma": "FMA", "f16c": "F16C"}


# The files the fingerprint reads: here through the file system, on a fleet SUT through one container.
HOST_FILES = {"cpuinfo": "/proc/cpuinfo", "smt": "/sys/devices/system/cpu/smt/active",
              "governor": "/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor",
              "boost": "/sys/devices/system/cpu/cpufreq/boost",
              "thp": "/sys/kernel/mm/transparent_hugepage/enabled",
              "cgroup2": "/sys/fs/cgroup/cgroup.controllers"}


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def _cpuinfo_field(text: str, name: str) -> str | None:
    return next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith(name)), None)


def host_facts(files: dict[str, str | None]) -> dict:
    """The fingerprint's CPU and kernel-setting fields from HOST_FILES' text (None where a file is missing)."""
    cpuinfo = files.get("cpuinfo") or ""
    flags = set((_cpuinfo_field(cpuinfo, "flags") or "").split())
    smt, thp = files.get("smt"), files.get("thp") or ""
    return {
        "cpu_model": _cpuinfo_field(cpuinfo, "model name"),
        "isa": [label for flag, label in ISA_FLAGS.items() if flag in flags],
        "smt": smt == "1" if smt else None,
        "governor": files.get("governor") or None,
        "boost": files.get("boost") or None,
        "microcode": _cpuinfo_field(cpuinfo, "microcode"),
        "transparent_hugepages": thp[thp.find("[") + 1:thp.find("]")] if "[" in thp else (thp or None),
        "cgroup": "v2" if files.get("cgroup2") is not None else "v1",
    }


def fingerprint(client=None) -> dict:
    docker_version = None
    if client is not None:
        try:
            docker_version = client.version().get("Version")
        except Exception:
            docker_version = None
    facts = host_facts({key: _read(path) for key, path in HOST_FILES.items()})
    commit, dirty = git_state()
    return {"hostname": platform.node(), **facts, "cpu_model": facts["cpu_model"] or platform.processor(),
            "kernel": platform.release(), "docker": docker_version, "python": platform.python_version(),
            "harness_commit": commit, "harness_dirty": dirty}


def git_state() -> tuple[str | None, bool | None]:
    """The harness's commit and whether its tracked files differ from it."""
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=10).stdout.strip() or None
        status = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10)
        return commit, bool(status.stdout.strip()) if status.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None, None
