"""What a comparison runs: configuration from flags and environment, and the list of cells.

A cell is one engine variant at one core count, in
`results/<SUT_NAME>/container_<cores>c<mem>g/<engine>-<model>-<variant>/`; each round runs it once,
in its own container, into `round-<k>/`.
"""
from __future__ import annotations

import os
import re
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from engines.registry import SPECS

from ..errors import UserError
from ..layout import DEFAULT_AUDIO, DEFAULT_MODELS, DEFAULT_RESULTS, cell_label, cell_name, shape_name
from .cpus import choose_cpuset, default_cores_list, format_cpu_list, parse_cpu_list, usable_cpus
from .housekeeping import split_pool
from .settings import BY_DEST, value
from .settings import number as _number

# The defaults live in the settings table (run/settings.py); these are its values as numbers, for the
# dataclass below and the simulations. Every cell runs REPEATS rounds; contenders then race
# (evidence/racing.py) up to MAX_ROUNDS inside TIME_BUDGET minutes of container runs (setup, image builds and
# the report outside): sized so that the default comparison (8 variants x 1 and 2 cores, 3.5 min of audio)
# runs its screen and several contender rounds on a 2-vCPU host; tests/test_statistics.py simulates the
# false-winner rate and power this gives.
DEFAULT_MODEL = BY_DEST["model"].default
DEFAULT_ROUNDS = int(BY_DEST["repeats"].default)
DEFAULT_MAX_ROUNDS = int(BY_DEST["max_rounds"].default)
DEFAULT_TIME_BUDGET_MIN = float(BY_DEST["time_budget"].default)
DEFAULT_TIMEOUT_S = float(BY_DEST["timeout"].default)
DEFAULT_HEARTBEAT_S = float(BY_DEST["heartbeat"].default)
# A cell's CPUs count as busy when another process used more than this share of them over the sample.
DEFAULT_QUIET_BUSY = float(BY_DEST["quiet_busy"].default)
DEFAULT_QUIET_WAIT_S = float(BY_DEST["quiet_wait"].default)


@dataclass(frozen=True)
class Cell:
    engine: str
    variant: str
    cores: int
    cpuset: tuple[int, ...]
    smt: dict = field(default_factory=dict, compare=False, hash=False)
    batch: int = 1          # files decoded together (--batch-size): the throughput scenario when > 1
    reference: bool = False  # the gate's reference, run once because the plan lacks it
    replica: int = 0        # calibrate's A/A: a second cell of the same variant

    def name(self, model: str) -> str:
        return cell_name(self.engine, model, self.variant, self.batch, self.replica)

    def label(self, model: str) -> str:
        return cell_label(self.name(model), self.cores)

    def key(self) -> str:
        return f"{self.engine}:{self.variant}@{self.cores}" + (f"x{self.batch}" if self.batch > 1 else "")


@dataclass
class Config:
    sut: str
    model: str
    engines: list[tuple[str, str]]          # (engine, variant) in plan order
    cores_list: list[int]
    cpu_pool: list[int]                      # host CPUs the cpusets are drawn from
    memory_gb: float
    rounds: int = DEFAULT_ROUNDS             # REPEATS: every cell runs once per round
    max_rounds: int = DEFAULT_MAX_ROUNDS     # contenders race up to this many rounds
    time_budget_s: float | None = DEFAULT_TIME_BUDGET_MIN * 60.0  # TIME_BUDGET (minutes); None: no budget
    seed: int = 0                            # shuffles each round's order; recorded in plan.json
    warmup: int = 1
    timeout_s: float = DEFAULT_TIMEOUT_S
    heartbeat_s: float = DEFAULT_HEARTBEAT_S
    quiet_busy: float = DEFAULT_QUIET_BUSY
    quiet_wait_s: float = DEFAULT_QUIET_WAIT_S
    results_dir: Path = DEFAULT_RESULTS
    models_dir: Path = DEFAULT_MODELS
    audio_dir: Path = DEFAULT_AUDIO
    engine_args: list[str] = field(default_factory=list)
    batch_sizes: list[int] = field(default_factory=lambda: [1])  # BATCH_SIZES: 1 is the latency scenario
    area: str = ""                           # a folder of its own inside the SUT's (discover: "discovery")
    # A remote Docker engine (fleet): the named volumes that hold the model store and the corpus there.
    # Empty: the local engine, with bind mounts.
    volumes: dict = field(default_factory=dict)
    price_per_core_hour: float | None = None  # fleet: what a core-hour costs on this SUT, if given

    @property
    def remote(self) -> bool:
        return bool(self.volumes)

    @property
    def cell_pool(self) -> list[int]:
        """The CPUs cells are drawn from: the pool less the housekeeping CPU, where one can be spared."""
        return self.cpu_pool if self.remote else split_pool(self.cpu_pool, max(self.cores_list))[0]

    @property
    def housekeeping_cpu(self) -> int | None:
        return None if self.remote else split_pool(self.cpu_pool, max(self.cores_list))[1]

    @property
    def model_dir(self) -> Path:
        from ..models.store import model_dir

        return model_dir(self.models_dir, self.model)

    @property
    def sut_dir(self) -> Path:
        return self.results_dir / self.sut / self.area if self.area else self.results_dir / self.sut

    def shape_dir(self, cores: int) -> Path:
        return self.sut_dir / shape_name(cores, self.memory_gb)

    def cell_dir(self, cell: Cell) -> Path:
        return self.shape_dir(cell.cores) / cell.name(self.model)

    def as_dict(self) -> dict:
        """For plan.json (tracked): the folders relative to the repository, never a host's absolute path."""
        from ..redact import repo_path

        d = asdict(self)
        for k in ("results_dir", "models_dir", "audio_dir"):
            d[k] = repo_path(d[k])
        return d


def parse_engines(text: str | None) -> list[tuple[str, str]]:
    """'ort faster-whisper:int8' -> [(ort, fp32), (ort, int8), (faster-whisper, int8)]; empty: the default
    comparison (the specs' in_default); "all": every engine."""
    items = (text or "").replace(",", " ").split()
    if not items:
        items = [name for name, spec in SPECS.items() if spec.in_default]
    elif items == ["all"]:
        items = list(SPECS)
    out = []
    for item in items:
        engine, _, variant = item.partition(":")
        if engine not in SPECS:
            raise UserError(f"ENGINES: unknown engine {engine!r}; choose from {', '.join(SPECS)}")
        variants = [variant] if variant else SPECS[engine].compared
        for v in variants:
            try:
                SPECS[engine].check_variant(v)
            except ValueError as exc:
                raise UserError(f"ENGINES: {exc}") from None
            if (engine, v) not in out:
                out.append((engine, v))
    return out


def _int_list(text: str, what: str) -> list[int]:
    try:
        values = [int(x) for x in text.replace(",", " ").split()]
    except ValueError:
        raise UserError(f"{what} {text!r}: expected whole numbers such as \"1 2 4\"") from None
    if any(v < 1 for v in values):
        raise UserError(f"{what} {text!r}: core counts must be at least 1")
    return values


def safe_name(value: str, what: str) -> str:
    """A name that becomes a folder (results/<SUT_NAME>/, models/whisper-<MODEL>/): no '..', no '/'."""
    from ..models.sources import NAME_RE

    if not NAME_RE.fullmatch(str(value)):
        raise UserError(f"{what}={value!r}: use letters, digits, '.', '_' and '-', starting with a letter or digit")
    return str(value)


def host_memory_gb() -> float:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30


def build_config(args, env=os.environ, host_cpus: list[int] | None = None,
                 host_memory: float | None = None) -> Config:
    """Flags win over the environment variables, which win over the defaults (all in run/settings.py);
    checks the host can run it."""
    def pick(dest, default=None):  # the setting's flag, variable or default (run/settings.py)
        return value(args, env, dest, default)

    host_cpus = usable_cpus() if host_cpus is None else host_cpus   # a fleet SUT passes its own machine's
    host_memory = host_memory_gb() if host_memory is None else host_memory
    cpuset_text = pick("cpuset")
    pool = parse_cpu_list(cpuset_text) if cpuset_text else host_cpus
    outside = sorted(set(pool) - set(host_cpus))
    if outside:
        raise UserError(f"CPUSET {cpuset_text}: CPU {format_cpu_list(outside)} is not usable on this host "
                        f"(usable: {format_cpu_list(host_cpus)})")
    cores_text = pick("cores_list")
    if cores_text:
        cores_list = _int_list(cores_text, "CORES_LIST")
    else:
        cores_list = [len(pool)] if cpuset_text else default_cores_list(len(pool))
    too_many = [c for c in cores_list if c > len(pool)]
    if too_many:
        where = f"CPUSET {cpuset_text}" if cpuset_text else "this host"
        raise UserError(f"CORES_LIST asks for {max(too_many)} cores but {where} has {len(pool)} usable CPUs "
                        f"({format_cpu_list(pool)}): use core counts up to {len(pool)}")
    memory_gb = _number(pick("memory_gb"), "MEMORY_GB", float, 0.1)
    if memory_gb > host_memory:
        raise UserError(f"MEMORY_GB={memory_gb:g} is more than this host's {host_memory:.1f} GiB of memory")
    rounds = _number(pick("repeats"), "REPEATS", int, 1)
    budget_min = _number(pick("time_budget"), "TIME_BUDGET", float, 0)
    max_rounds = _number(pick("max_rounds"), "MAX_ROUNDS", int, 1)
    return Config(
        sut=safe_name(pick("sut") or re.sub(r"[^A-Za-z0-9._-]+", "-", socket.gethostname()),
                      "SUT_NAME"),
        model=safe_name(pick("model"), "MODEL"),
        engines=parse_engines(pick("engines")),
        cores_list=list(dict.fromkeys(cores_list)),
        cpu_pool=pool,
        memory_gb=memory_gb,
        rounds=rounds,
        max_rounds=max(max_rounds, rounds),
        time_budget_s=budget_min * 60.0 if budget_min > 0 else None,
        seed=_number(pick("seed", default=int(time.time())), "SEED", int, 0),
        warmup=_number(pick("warmup"), "WARMUP", int, 0),
        timeout_s=_number(pick("timeout"), "RUN_TIMEOUT_SEC", float, 1),
        heartbeat_s=_number(pick("heartbeat"), "MODEL_PROGRESS_INTERVAL_SEC", float, 1),
        quiet_busy=_number(pick("quiet_busy"), "QUIET_BUSY", float, 0),
        quiet_wait_s=_number(pick("quiet_wait"), "QUIET_WAIT_SEC", float, 0),
        results_dir=Path(pick("results", default=DEFAULT_RESULTS)),
        models_dir=Path(pick("models_dir", default=DEFAULT_MODELS)),
        audio_dir=Path(pick("audio_dir", default=DEFAULT_AUDIO)),
        engine_args=list(getattr(args, "engine_args", None) or []),
        batch_sizes=list(dict.fromkeys(_int_list(pick("batch_sizes"), "BATCH_SIZES"))),
    )


def plan_cells(config: Config) -> list[Cell]:
    """Every cell, core counts outer, then batch sizes, then engines (each round shuffles this order)."""
    cells = []
    for cores in config.cores_list:
        cpus, smt = choose_cpuset(config.cell_pool, cores)
        for batch in config.batch_sizes:
            for engine, variant in config.engines:
                if batch == 1 or SPECS[engine].batching:  # the throughput scenario: engines that batch
                    cells.append(Cell(engine, variant, cores, tuple(cpus), smt, batch))
    return cells
