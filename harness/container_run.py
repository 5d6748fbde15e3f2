"""One cell: one pinned, memory-limited, network-less container running one engine variant.

Writes into the cell folder: the engine's result files, time.txt, cgroup_memory.json (from inside
the container), container.log and run.json (what the host saw: image, limits, exit, OOM, wall time).
"""
from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path

from .files import read_json, write_json
from .plan import Cell, Config, format_cpu_list
from .progress import RunProgress
from .timev import read_time_file

CONTAINER_UID = 1000     # the image's `bench` user, used when the harness itself runs as root
POLL_S = 0.5
RUN_FILE = "run.json"


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def files_done(cell_dir: Path) -> int:
    rows = read_json(cell_dir / "inference_per_file.json")
    return len(rows) if isinstance(rows, list) else 0


def container_user() -> str:
    uid = os.getuid()
    return f"{CONTAINER_UID}:{CONTAINER_UID}" if uid == 0 else f"{uid}:{os.getgid()}"


def engine_command(config: Config, cell: Cell) -> list[str]:
    return [cell.engine, "--model-dir", "/models", "--model-name", config.model, "--audio-dir", "/audio",
            "--out", "/results", "--threads", str(cell.cores), "--precision", cell.variant,
            "--warmup", str(config.warmup), "--repeats", str(config.repeats), *config.engine_args]


def base_record(config: Config, cell: Cell, smt: dict, image: str, image_id: str | None) -> dict:
    """What run.json says of a cell before it runs (also all it says when its image failed to build)."""
    return {
        "sut": config.sut, "cell": cell.name(config.model), "engine": cell.engine, "model": config.model,
        "variant": cell.variant, "cores": cell.cores, "threads": cell.cores,
        "cpuset": format_cpu_list(cell.cpuset), "cpus": list(cell.cpuset), "smt": smt,
        "memory_limit_bytes": int(config.memory_gb * 2**30), "memory_gb": config.memory_gb,
        "timeout_s": config.timeout_s, "image": image, "image_id": image_id,
        "command": engine_command(config, cell), "user": container_user(), "network": "none",
        "read_only_mounts": ["/models", "/audio"], "started_at": _now(),
    }


def run_cell(client, config: Config, cell: Cell, smt: dict, cell_dir: Path, image: str, image_id: str,
             n_files: int) -> dict:
    """Run the container to its end (or timeout, OOM, Ctrl-C) and return the run.json record."""
    cell_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(cell_dir, 0o777)  # the container's unprivileged user writes here
    record = base_record(config, cell, smt, image, image_id)
    memory = record["memory_limit_bytes"]
    model_dir = config.model_dir.resolve()
    container = client.containers.create(
        image, record["command"], detach=True, user=record["user"], network_mode="none",
        cpuset_cpus=record["cpuset"], mem_limit=memory, memswap_limit=memory,  # no swap: over the limit is an OOM
        read_only=True, tmpfs={"/tmp": "rw,nosuid,nodev,size=1g,mode=1777"},
        security_opt=["no-new-privileges"], cap_drop=["ALL"], pids_limit=4096,
        environment={"RESULTS_DIR": "/results"}, labels={"org.whisper-bench.cell": record["cell"]},
        volumes={str(model_dir): {"bind": "/models", "mode": "ro"},
                 str(config.audio_dir.resolve()): {"bind": "/audio", "mode": "ro"},
                 str(cell_dir.resolve()): {"bind": "/results", "mode": "rw"}})
    progress = RunProgress(f"{record['cell']} @ {cell.cores}c", n_files * config.repeats, config.heartbeat_s)
    timed_out = interrupted = False
    stats_peak = None
    start = time.perf_counter()
    try:
        container.start()
        while True:
            container.reload()
            if container.status in ("exited", "dead"):
                break
            progress.update(files_done(cell_dir))
            if time.perf_counter() - start > config.timeout_s:
                stats_peak = _stats_peak(container)
                _kill_quietly(container)
                timed_out = True
                container.wait(timeout=60)
                break
            time.sleep(POLL_S)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        wall = time.perf_counter() - start
        try:
            if interrupted:
                _kill_quietly(container)
            container.reload()
            state = container.attrs["State"]
            (cell_dir / "container.log").write_bytes(container.logs(stdout=True, stderr=True))
        finally:
            container.remove(force=True)
        record.update(_collect(cell_dir, state, wall, timed_out, interrupted, stats_peak))
        _restore_ownership(cell_dir)
        write_json(cell_dir / RUN_FILE, record)
        progress.done = files_done(cell_dir)
        progress.finish(record["status"], wall)
    if interrupted:
        raise KeyboardInterrupt
    return record


def _kill_quietly(container) -> None:
    from docker.errors import APIError

    try:
        container.kill()
    except APIError:  # it had already exited
        pass


def _stats_peak(container) -> int | None:
    """The cgroup's peak so far, read by the host (used when the container cannot write its own)."""
    try:
        mem = container.stats(stream=False).get("memory_stats", {})
        return mem.get("max_usage") or mem.get("usage")
    except Exception:
        return None


def _collect(cell_dir: Path, state: dict, wall: float, timed_out: bool, interrupted: bool,
             stats_peak: int | None) -> dict:
    summary = read_json(cell_dir / "inference_summary.json") or {}
    cgroup = read_json(cell_dir / "cgroup_memory.json") or {}
    time_v = read_time_file(cell_dir / "time.txt")
    exit_code = state.get("ExitCode")
    # Docker's flag, or the engine killed by SIGKILL that neither a timeout nor Ctrl-C sent.
    killed = (time_v or {}).get("terminated_by_signal") == 9 and not (timed_out or interrupted)
    oom = bool(state.get("OOMKilled")) or killed
    if interrupted:
        status, error = "interrupted", "stopped by Ctrl-C"
    elif timed_out:
        status, error = "timeout", "killed after the run's time limit"
    elif oom:
        status, error = "oom", "killed by the kernel: out of memory under the container's limit"
    elif exit_code == 0 and summary.get("status") in ("ok", "partial"):
        status, error = summary["status"], None
        if status == "partial":
            error = f"{summary.get('failures')} file(s) failed: {', '.join(summary.get('failed_files', []))}"
    else:
        status, error = "failed", _last_error(cell_dir / "container.log") or f"exit code {exit_code}"
    engine_s = summary.get("total_processing_s")
    if engine_s is not None:
        engine_s *= summary.get("repeats") or 1
    return {
        "finished_at": _now(), "status": status, "error": error, "exit_code": exit_code, "oom_killed": oom,
        "timed_out": timed_out, "host_wall_s": wall,
        "engine_elapsed_s": (time_v or {}).get("elapsed_s"),
        "engine_processing_s": engine_s,
        "model_load_s": summary.get("model_load_s"),
        # Everything the host waited for beyond transcription: container start and stop, interpreter
        # start, model load, warm-up. container_overhead_s leaves out what ran inside (time -v elapsed).
        "harness_overhead_s": wall - engine_s if engine_s is not None else None,
        "container_overhead_s": wall - time_v["elapsed_s"] if time_v and "elapsed_s" in time_v else None,
        "time_v": time_v,
        "max_rss_mb": (time_v or {}).get("max_rss_mb"),
        "cgroup_peak_bytes": cgroup.get("peak_bytes") or stats_peak,
        "cgroup_peak_source": cgroup.get("source") or ("docker stats (host)" if stats_peak else None),
    }


def _last_error(log: Path) -> str | None:
    try:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return None
    errors = [ln for ln in lines if ln.startswith("error:") or "Error" in ln.split(":")[0]]
    return (errors or lines or [None])[-1]


def _restore_ownership(cell_dir: Path) -> None:
    """Files written by the container's user go back to the user who runs the harness."""
    uid, gid = os.getuid(), os.getgid()
    for path in [cell_dir, *cell_dir.rglob("*")]:
        try:
            if uid == 0:
                os.chown(path, uid, gid)
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        except OSError:
            pass
