"""One container run: one pinned, memory-limited, network-less container running one engine variant.

The container writes into a fresh place of its own (harness/run/outputs.py); the host copies the engine's
result files, time.txt and cgroup_memory.json back into the round folder and writes container.log and
run.json (what the host saw: image, limits, exit, OOM, wall time) there itself. A container that cannot
be created or started is a `start_failed` row, and the comparison goes on.
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from engines.command import runner_arguments
from engines.results import Status
from engines.serve.logs import SERVE_SUMMARY

from ..files import ResultsWriteError, count_lines, read_bytes, read_json_object, write_atomic, write_json
from ..layout import ROWS_FILE, RUN_FILE, SUMMARY_FILE
from ..redact import scrub
from .config import Cell, Config
from .cpus import busy_seconds, foreign_share, format_cpu_list
from .labels import CONTROLLER_LABEL, LABEL, OWNER_LABEL
from .outputs import (
    CGROUP_FILE,
    LOG_FILE,
    MAX_LOG_BYTES,
    TIME_FILE,
    CopyBack,
    container_log,
    fresh_output_dir,
    remove_output_dir,
)
from .progress import RunProgress
from .record import RunRecord, now
from .signals import Stopped, check_stop
from .time_v import read_time_file

CONTAINER_UID = 1000     # the image's `bench` user, used when the harness itself runs as root
START_FAILED = "start_failed"   # the container could not be created or started: a row, not an abort
PROGRESS_S = 1.0         # how often the progress line refreshes; the exit itself is waited for, not polled
# On a remote engine results go to a fresh named volume mounted over the image's own home folder of the
# unprivileged user (so the volume starts owned by that user), and come back through the API.
REMOTE_RESULTS = "/home/bench"


def container_user() -> str:
    uid = os.getuid()
    return f"{CONTAINER_UID}:{CONTAINER_UID}" if uid == 0 else f"{uid}:{os.getgid()}"


def engine_command(config: Config, cell: Cell) -> list[str]:
    """The runner's arguments inside the container: the model store, the corpus and the results at their
    mount points, one thread per core of the cell."""
    return runner_arguments(cell.engine, model_dir="/models", model_name=config.model, audio_dir="/audio",
                            out=REMOTE_RESULTS if config.remote else "/results", threads=cell.cores,
                            precision=cell.variant, warmup=config.warmup, repeats=1, batch_size=cell.batch,
                            extra=config.engine_args)


def new_record(config: Config, cell: Cell, image: str, image_id: str | None, round_index: int) -> RunRecord:
    return RunRecord(
        sut=config.sut, cell=cell.name(config.model), engine=cell.engine, model=config.model,
        variant=cell.variant, cores=cell.cores, threads=cell.cores, cpuset=format_cpu_list(cell.cpuset),
        cpus=list(cell.cpuset), smt=cell.smt, memory_limit_bytes=int(config.memory_gb * 2**30),
        memory_gb=config.memory_gb, timeout_s=config.timeout_s, image=image, image_id=image_id,
        command=engine_command(config, cell), user=container_user(), round=round_index)


def _container_ids() -> tuple[int, int]:
    uid, _, gid = container_user().partition(":")
    return int(uid), int(gid)


def _create(client, config: Config, record: RunRecord, out_dir: Path | None):
    """The container (not started) and its results volume on a remote engine (None locally)."""
    memory = record.memory_limit_bytes
    results_volume = None
    if config.remote:  # named volumes on that engine; results come back through the API after the run
        results_volume = client.volumes.create(labels={LABEL: record.cell, **owner_labels()}).name
        volumes = {config.volumes["models"]: {"bind": "/models", "mode": "ro"},
                   config.volumes["audio"]: {"bind": "/audio", "mode": "ro"},
                   results_volume: {"bind": REMOTE_RESULTS, "mode": "rw"}}
    else:
        volumes = {str(config.model_dir.resolve()): {"bind": "/models", "mode": "ro"},
                   str(config.audio_dir.resolve()): {"bind": "/audio", "mode": "ro"},
                   str(out_dir): {"bind": "/results", "mode": "rw"}}
    try:
        container = client.containers.create(
            record.image, record.command, detach=True, user=record.user, network_mode="none",
            cpuset_cpus=record.cpuset, mem_limit=memory, memswap_limit=memory,  # no swap: over the limit is an OOM
            read_only=True, tmpfs={"/tmp": "rw,nosuid,nodev,size=1g,mode=1777"},
            security_opt=["no-new-privileges"], cap_drop=["ALL"], pids_limit=4096,
            environment={"RESULTS_DIR": record.command[record.command.index("--out") + 1]},
            labels={LABEL: record.cell, **owner_labels()}, volumes=volumes)
    except BaseException:
        _remove_volume(client, results_volume)
        raise
    return container, results_volume


def owner_labels() -> dict[str, str]:
    """Which harness a container or volume belongs to: its pid and its controller id (harness/run/lock.py)."""
    from .lock import controller_id

    return {OWNER_LABEL: str(os.getpid()), CONTROLLER_LABEL: controller_id()}


def _remove_volume(client, name: str | None) -> None:
    if name is None:
        return
    try:
        client.volumes.get(name).remove(force=True)
    except Exception:  # the engine went away; the next harness's clean-up removes it by label
        pass


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[-1][:300]}" if text else type(exc).__name__


@dataclass
class _Watch:
    """What the host saw while the container ran: when it started and ended, and how it stopped."""
    start: float = field(default_factory=time.perf_counter)
    ended_at: float | None = None
    timed_out: bool = False
    stopped: Stopped | None = None
    start_error: str | None = None
    stats_peak: int | None = None

    def wall(self) -> float:
        return (self.ended_at if self.ended_at is not None else time.perf_counter()) - self.start


def run_container(client, config: Config, cell: Cell, run_dir: Path, record: RunRecord, n_files: int) -> RunRecord:
    """Run the container to its end (or timeout, OOM, a stop signal) and fill in the record. A container that
    cannot be created or started is a `start_failed` record. Raises `Stopped` after the clean-up when a
    signal arrived; the container and its fresh output place are removed in every case."""
    run_dir.mkdir(parents=True, exist_ok=True)
    out_dir = None if config.remote else fresh_output_dir(*_container_ids())
    progress = RunProgress(f"{record.cell} @ {cell.cores}c round {record.round}", n_files, config.heartbeat_s)
    try:
        container, results_volume = _create(client, config, record, out_dir)
    except Exception as exc:  # an unknown image, a cpuset the engine refuses, the engine gone
        if out_dir is not None:
            remove_output_dir(out_dir)
        return _start_failed(record, run_dir, progress, f"the container could not be created: {_one_line(exc)}")
    copied = CopyBack(run_dir)

    def rows_so_far() -> int:  # a remote run's rows come back when it ends: until then only the heartbeat
        return progress.done if out_dir is None else count_lines(out_dir / ROWS_FILE)

    watch = _Watch()
    busy_before = None if config.remote else busy_seconds(cell.cpuset)  # another host's /proc is not ours
    try:
        _wait_for_end(container, config, progress, watch, rows_so_far)
    except Stopped as exc:
        watch.stopped = exc
    finally:
        wall = watch.wall()
        state = _tear_down(client, container, results_volume, out_dir, copied, watch)
        _finish_record(record, run_dir, cell, state, wall, watch, copied, busy_before)
        progress.done = count_lines(run_dir / ROWS_FILE)
        progress.finish(record.status, wall)
    if watch.stopped is not None:
        raise watch.stopped
    return record


def _wait_for_end(container, config: Config, progress: RunProgress, watch: _Watch, rows_so_far) -> None:
    """Start the container and wait for its exit, refreshing the progress line; past the time limit, kill it.
    A stop signal raises `Stopped` out of here."""
    try:
        container.start()
    except Exception as exc:
        watch.start_error = f"the container could not be started: {_one_line(exc)}"
        return
    watch.start = time.perf_counter()
    exited = threading.Event()

    def wait_for_exit():
        try:
            container.wait()
        except Exception:  # removed under us (clean-up after a stop): nothing to wait for
            pass
        watch.ended_at = time.perf_counter()
        exited.set()

    threading.Thread(target=wait_for_exit, daemon=True).start()
    while not exited.wait(PROGRESS_S):
        check_stop()
        progress.update(rows_so_far())
        if time.perf_counter() - watch.start > config.timeout_s:
            watch.stats_peak = _stats_peak(container)
            _kill_quietly(container)
            watch.timed_out = True
            exited.wait(60)
            break


def _tear_down(client, container, results_volume: str | None, out_dir: Path | None, copied: CopyBack,
               watch: _Watch) -> dict:
    """Kill a stopped run, save its log, copy its results back, remove the container, its volume and its
    output place; the container's final State (empty when the engine went away)."""
    state = {}
    try:
        if watch.stopped is not None:
            _kill_quietly(container)
        container.reload()
        state = container.attrs["State"]
        write_atomic(copied.run_dir / LOG_FILE, container_log(container))
        if out_dir is not None:
            copied.from_folder(out_dir)
        elif watch.start_error is None:
            copied.from_container(container, REMOTE_RESULTS)
    except (OSError, ResultsWriteError) as exc:  # a full results disk: run.json says so, or one line
        copied.refused.append(f"results not written ({exc})")
    except Exception as exc:  # the engine went away during the clean-up
        copied.refused.append(f"results not fetched ({_one_line(exc)})")
    finally:
        try:
            container.remove(force=True)
        except Exception:  # gone with its engine: the next harness's clean-up finds it by label
            pass
        _remove_volume(client, results_volume)
        if out_dir is not None:
            remove_output_dir(out_dir)
    return state


def _finish_record(record: RunRecord, run_dir: Path, cell: Cell, state: dict, wall: float, watch: _Watch,
                   copied: CopyBack, busy_before: float | None) -> None:
    """Fill in the record from what came back and what the host saw, and write run.json."""
    _collect(record, run_dir, state, wall, watch.timed_out, watch.stopped, watch.stats_peak, copied)
    if watch.start_error is not None:
        record.status, record.error = START_FAILED, scrub(_first_line(watch.start_error))
    own = ((record.time_v or {}).get("user_s") or 0.0) + ((record.time_v or {}).get("system_s") or 0.0)
    if busy_before is not None and watch.start_error is None:
        record.foreign_busy_share = round(foreign_share(busy_seconds(cell.cpuset) - busy_before, own, wall,
                                                        len(cell.cpuset)), 3)
    write_json(run_dir / RUN_FILE, record.to_dict())


def _start_failed(record: RunRecord, run_dir: Path, progress: RunProgress, error: str) -> RunRecord:
    record.finished_at, record.status, record.error = now(), START_FAILED, scrub(_first_line(error))
    write_json(run_dir / RUN_FILE, record.to_dict())
    progress.finish(record.status, 0.0)
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


def _number(value) -> float | None:
    """A number from a file the container wrote, or None for anything else (a string, a list, a bool)."""
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _collect(record: RunRecord, run_dir: Path, state: dict, wall: float, timed_out: bool,
             stopped: Stopped | None, stats_peak: int | None, copied: CopyBack) -> None:
    # the engine's summary, or a serving run's (`harness serve`: the same status words)
    summary = read_json_object(run_dir / SUMMARY_FILE) or read_json_object(run_dir / SERVE_SUMMARY) or {}
    cgroup = read_json_object(run_dir / CGROUP_FILE) or {}
    time_v = read_time_file(run_dir / TIME_FILE)
    exit_code = state.get("ExitCode")
    # Docker's flag, or the engine killed by SIGKILL that neither a timeout nor a stop sent.
    killed = (time_v or {}).get("terminated_by_signal") == 9 and not (timed_out or stopped)
    oom = bool(state.get("OOMKilled")) or killed
    summary_status = summary.get("status") if isinstance(summary.get("status"), str) else None
    if stopped is not None:
        status, error = Status.INTERRUPTED, f"stopped by {stopped.name}"
        record.interrupted_by = stopped.name
    elif timed_out:
        status, error = Status.TIMEOUT, "killed after the run's time limit"
    elif oom:
        status, error = Status.OOM, "killed by the kernel: out of memory under the container's limit"
    elif exit_code == 0 and summary_status in (Status.OK, Status.PARTIAL) and not copied.refused:
        status, error = Status(summary_status), None
        if status == Status.PARTIAL:
            failed = summary.get("failed_files")
            error = f"{summary.get('failures')} file(s) failed: " + \
                ", ".join(map(str, failed if isinstance(failed, list) else []))
    elif copied.refused:
        status, error = Status.FAILED, f"the container's results were {copied.summary()}"
    else:
        status, error = Status.FAILED, _last_error(run_dir / LOG_FILE) or f"exit code {exit_code}"
    engine_s = _number(summary.get("total_processing_s"))
    record.finished_at, record.status, record.error = now(), str(status), scrub(_first_line(error))
    record.exit_code, record.oom_killed, record.timed_out, record.host_wall_s = exit_code, oom, timed_out, wall
    record.engine_elapsed_s = (time_v or {}).get("elapsed_s")
    record.engine_processing_s = engine_s
    record.model_load_s = _number(summary.get("model_load_s"))
    # Everything the host waited for beyond transcription: container start and stop, interpreter start,
    # model load, warm-up. container_overhead_s leaves out what ran inside (time -v elapsed).
    record.harness_overhead_s = wall - engine_s if engine_s is not None else None
    record.container_overhead_s = wall - time_v["elapsed_s"] if time_v and "elapsed_s" in time_v else None
    record.time_v = time_v
    record.max_rss_mb = (time_v or {}).get("max_rss_mb")
    record.cgroup_peak_bytes = _number(cgroup.get("peak_bytes")) or stats_peak
    source = cgroup.get("source") if isinstance(cgroup.get("source"), str) else None
    record.cgroup_peak_source = source[:100] if source else ("docker stats (host)" if stats_peak else None)
    record.cgroup_anon_bytes = _number(cgroup.get("anon_bytes"))
    record.cgroup_cache_bytes = _number(cgroup.get("cache_bytes"))


def _first_line(text: str | None, limit: int = 400) -> str | None:
    """What the container said, as one line of bounded length."""
    if text is None:
        return None
    line = " ".join(text.split())
    return line if len(line) <= limit else line[:limit - 3] + "..."


def _last_error(log: Path) -> str | None:
    raw = read_bytes(log, MAX_LOG_BYTES)
    lines = [ln.strip() for ln in (raw or b"").decode(errors="replace").splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:") or "Error" in ln.split(":")[0]]
    return (errors or lines or [None])[-1]


__all__ = ["CONTAINER_UID", "CONTROLLER_LABEL", "LABEL", "OWNER_LABEL", "START_FAILED", "ResultsWriteError",
           "engine_command", "new_record", "run_container"]
