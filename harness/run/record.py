"""run.json: the host's record of one container run, built in one place and written once."""
from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field

from engines.results import Status


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@dataclass
class RunRecord:
    sut: str
    cell: str
    engine: str
    model: str
    variant: str
    cores: int
    threads: int
    cpuset: str
    cpus: list[int]
    smt: dict
    memory_limit_bytes: int
    memory_gb: float
    timeout_s: float
    image: str
    image_id: str | None
    command: list[str]
    user: str
    round: int = 1
    run_id: str | None = None                # one `harness run`: its rounds pair, another run's do not
    seed: int | None = None
    commit: str | None = None
    replica: int = 0                         # calibrate's A/A: the same variant as two cells
    network: str = "none"
    read_only_mounts: list[str] = field(default_factory=lambda: ["/models", "/audio"])
    started_at: str = field(default_factory=now)
    finished_at: str | None = None
    status: str = str(Status.RUNNING)
    error: str | None = None
    exit_code: int | None = None
    oom_killed: bool = False
    timed_out: bool = False
    interrupted_by: str | None = None
    host_wall_s: float | None = None
    engine_elapsed_s: float | None = None
    engine_processing_s: float | None = None
    model_load_s: float | None = None
    harness_overhead_s: float | None = None
    container_overhead_s: float | None = None
    time_v: dict | None = None
    max_rss_mb: float | None = None          # MiB (time -v reports KiB), kept under its first name
    cgroup_peak_bytes: int | None = None
    cgroup_peak_source: str | None = None
    cgroup_anon_bytes: int | None = None     # anonymous memory at the end (memory.stat), page cache apart
    cgroup_cache_bytes: int | None = None
    page_cache_evicted: bool = False         # model and audio files dropped from the page cache before
    quiet: dict | None = None                # CPU load seen on the cell's CPUs before the run
    foreign_busy_share: float | None = None  # share of the cell's CPUs used by anything else during the run
    host: dict | None = None

    def to_dict(self) -> dict:
        return asdict(self)
