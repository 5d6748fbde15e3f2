"""One container run: one pinned, memory-limited, network-less container running one engine variant.

Writes into the round folder: the engine's result files, time.txt, cgroup_memory.json (from inside
the container), container.log and run.json (what the host saw: image, limits, exit, OOM, wall time).
"""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from engines.results import Status

from ..files import ResultsWriteError, count_lines, read_json, write_json
from ..layout import ROWS_FILE, RUN_FILE, SUMMARY_FILE
from .config import Cell, Config
from .cpus import busy_seconds, foreign_share, format_cpu_list
from .progress import RunProgress
from .record import RunRecord, now
from .signals import Stopped, check_stop
from .time_v import read_time_file

CONTAINER_UID = 1000     # the image's `bench` user, used when the harness itself runs as root
LABEL = "org.whisper-bench.cell"
OWNER_LABEL = "org.whisper-bench.harness-pid"
PROGRESS_S = 1.0         # how often the progress line refreshes; the exit itself is waited for, not polled
# On a remote engine results go to a fresh named volume mounted over the image's own home folder of the
# unprivileged user (so the volume starts owned by that user), and come back through the API.
REMOTE_RESULTS = "/home/bench"


def container_user() -> str:
    uid = os.getuid()
    return f"{CONTAINER_UID}:{CONTAINER_UID}" if uid == 0 else f"{uid}:{os.getgid()}"


def engine_command(config: Config, cell: Cell) -> list[str]:
    return [cell.engine, "--model-dir", "/models", "--model-name", config.model, "--audio-dir", "/audio",
            "--out", REMOTE_RESULTS if config.remote else "/results", "--threads", str(cell.cores),
            "--precision", cell.variant,
            "--warmup", str(config.warmup), "--repeats", "1", *config.engine_args,
            *(["--batch-size", str(cell.batch)] if cell.batch > 1 else [])]


def new_record(config: Config, cell: Cell, image: str, image_id: str | None, round_index: int) -> RunRecord:
    return RunRecord(
        sut=config.sut, cell=cell.name(config.model), engine=cell.engine, model=config.model,
        variant=cell.variant, cores=cell.cores, threads=cell.cores, cpuset=format_cpu_list(cell.cpuset),
        cpus=list(cell.cpuset), smt=cell.smt, memory_limit_bytes=int(config.memory_gb * 2**30),
        memory_gb=config.memory_gb, timeout_s=config.timeout_s, image=image, image_id=image_id,
        command=engine_command(config, cell), user=container_user(), round=round_index)


def run_container(client, config: Config, cell: Cell, run_dir: Path, record: RunRecord, n_files: int) -> RunRecord:
    """Run the container to its end (or timeout, OOM, a stop signal) and fill in the record.
    Raises `Stopped` after the clean-up when a signal arrived; the container is removed in every case."""
    run_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(run_dir, 0o777)  # the container's unprivileged user writes here
    memory = record.memory_limit_bytes
    if config.remote:  # named volumes on that engine; results come back through the API after the run
        results_volume = client.volumes.create(labels={LABEL: record.cell}).name
        volumes = {config.volumes["models"]: {"bind": "/models", "mode": "ro"},
                   config.volumes["audio"]: {"bind": "/audio", "mode": "ro"},
                   results_volume: {"bind": REMOTE_RESULTS, "mode": "rw"}}
    else:
        results_volume = None
        volumes = {str(config.model_dir.resolve()): {"bind": "/models", "mode": "ro"},
                   str(config.audio_dir.resolve()): {"bind": "/audio", "mode": "ro"},
                   str(run_dir.resolve()): {"bind": "/results", "mode": "rw"}}
    container = client.containers.create(
        record.image, record.command, detach=True, user=record.user, network_mode="none",
        cpuset_cpus=record.cpuset, mem_limit=memory, memswap_limit=memory,  # no swap: over the limit is an OOM
        read_only=True, tmpfs={"/tmp": "rw,nosuid,nodev,size=1g,mode=1777"},
        security_opt=["no-new-privileges"], cap_drop=["ALL"], pids_limit=4096,
        environment={"RESULTS_DIR": record.command[record.command.index("--out") + 1]},
        labels={LABEL: record.cell, OWNER_LABEL: str(os.getpid())}, volumes=volumes)
    progress = RunProgress(f"{record.cell} @ {cell.cores}c round {record.round}", n_files, config.heartbeat_s)
    timed_out = False
    stopped: Stopped | None = None
    stats_peak = None
    exited = threading.Event()
    ended_at: list[float] = []

    def wait_for_exit():
        try:
            container.wait()
        except Exception:  # removed under us (clean-up after a stop): nothing to wait for
            pass
        ended_at.append(time.perf_counter())
        exited.set()

    start = time.perf_counter()
    busy_before = None if config.remote else busy_seconds(cell.cpuset)  # another host's /proc is not ours
    try:
        container.start()
        start = time.perf_counter()
        threading.Thread(target=wait_for_exit, daemon=True).start()
        while not exited.wait(PROGRESS_S):
            check_stop()
            # a remote run's rows come back when it ends: until then only the heartbeat
            progress.update(progress.done if config.remote else count_lines(run_dir / ROWS_FILE))
            if time.perf_counter() - start > config.timeout_s:
                stats_peak = _stats_peak(container)
                _kill_quietly(container)
                timed_out = True
                exited.wait(60)
                break
    except Stopped as exc:
        stopped = exc
    finally:
        wall = (ended_at[0] if ended_at else time.perf_counter()) - start
        state = {}
        try:
            if stopped is not None:
                _kill_quietly(container)
            container.reload()
            state = container.attrs["State"]
            (run_dir / "container.log").write_bytes(container.logs(stdout=True, stderr=True))
            if results_volume is not None:
                fetch_results(container, run_dir)
        except OSError:
            pass  # a full results disk: the record below still says what happened, or fails with one line
        finally:
            container.remove(force=True)
            if results_volume is not None:
                client.volumes.get(results_volume).remove(force=True)
        _collect(record, run_dir, state, wall, timed_out, stopped, stats_peak)
        own = ((record.time_v or {}).get("user_s") or 0.0) + ((record.time_v or {}).get("system_s") or 0.0)
        if busy_before is not None:
            record.foreign_busy_share = round(foreign_share(busy_seconds(cell.cpuset) - busy_before, own, wall,
                                                            len(cell.cpuset)), 3)
        _restore_ownership(run_dir)
        write_json(run_dir / RUN_FILE, record.to_dict())
        progress.done = count_lines(run_dir / ROWS_FILE)
        progress.finish(record.status, wall)
    if stopped is not None:
        raise stopped
    return record


def fetch_results(container, run_dir: Path) -> None:
    """A remote run's result files, read from its (stopped) container through the Docker API."""
    import tarfile
    import tempfile

    with tempfile.TemporaryFile() as buf:
        stream, _ = container.get_archive(REMOTE_RESULTS)
        for chunk in stream:
            buf.write(chunk)
        buf.seek(0)
        with tarfile.open(fileobj=buf) as tar:
            for member in tar.getmembers():
                name = Path(member.name).name
                if member.isfile() and not name.startswith(".") and "/" in member.name.strip("/"):
                    with tar.extractfile(member) as src:
                        (run_dir / name).write_bytes(src.read())


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


def _collect(record: RunRecord, run_dir: Path, state: dict, wall: float, timed_out: bool,
             stopped: Stopped | None, stats_peak: int | None) -> None:
    summary = read_json(run_dir / SUMMARY_FILE) or {}
    cgroup = read_json(run_dir / "cgroup_memory.json") or {}
    time_v = read_time_file(run_dir / "time.txt")
    exit_code = state.get("ExitCode")
    # Docker's flag, or the engine killed by SIGKILL that neither a timeout nor a stop sent.
    killed = (time_v or {}).get("terminated_by_signal") == 9 and not (timed_out or stopped)
    oom = bool(state.get("OOMKilled")) or killed
    if stopped is not None:
        status, error = Status.INTERRUPTED, f"stopped by {stopped.name}"
        record.interrupted_by = stopped.name
    elif timed_out:
        status, error = Status.TIMEOUT, "killed after the run's time limit"
    elif oom:
        status, error = Status.OOM, "killed by the kernel: out of memory under the container's limit"
    elif exit_code == 0 and summary.get("status") in (Status.OK, Status.PARTIAL):
        status, error = Status(summary["status"]), None
        if status == Status.PARTIAL:
            error = f"{summary.get('failures')} file(s) failed: {', '.join(summary.get('failed_files', []))}"
    else:
        status, error = Status.FAILED, _last_error(run_dir / "container.log") or f"exit code {exit_code}"
    engine_s = summary.get("total_processing_s")
    record.finished_at, record.status, record.error = now(), str(status), error
    record.exit_code, record.oom_killed, record.timed_out, record.host_wall_s = exit_code, oom, timed_out, wall
    record.engine_elapsed_s = (time_v or {}).get("elapsed_s")
    record.engine_processing_s = engine_s
    record.model_load_s = summary.get("model_load_s")
    # Everything the host waited for beyond transcription: container start and stop, interpreter start,
    # model load, warm-up. container_overhead_s leaves out what ran inside (time -v elapsed).
    record.harness_overhead_s = wall - engine_s if engine_s is not None else None
    record.container_overhead_s = wall - time_v["elapsed_s"] if time_v and "elapsed_s" in time_v else None
    record.time_v = time_v
    record.max_rss_mb = (time_v or {}).get("max_rss_mb")
    record.cgroup_peak_bytes = cgroup.get("peak_bytes") or stats_peak
    record.cgroup_peak_source = cgroup.get("source") or ("docker stats (host)" if stats_peak else None)
    record.cgroup_anon_bytes = cgroup.get("anon_bytes")
    record.cgroup_cache_bytes = cgroup.get("cache_bytes")


def _last_error(log: Path) -> str | None:
    try:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return None
    errors = [ln for ln in lines if ln.startswith("error:") or "Error" in ln.split(":")[0]]
    return (errors or lines or [None])[-1]


def _restore_ownership(run_dir: Path) -> None:
    """Files written by the container's user go back to the user who runs the harness."""
    uid, gid = os.getuid(), os.getgid()
    for path in [run_dir, *run_dir.rglob("*")]:
        try:
            if uid == 0:
                os.chown(path, uid, gid)
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        except OSError:
            pass


__all__ = ["CONTAINER_UID", "LABEL", "OWNER_LABEL", "ResultsWriteError", "engine_command", "new_record",
           "run_container"]
