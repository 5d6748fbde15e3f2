"""What a comparison runs: configuration from flags and environment, CPU sets, and the list of cells.

A cell is one container: one engine variant at one core count, in
`results/<SUT_NAME>/container_<cores>c<mem>g/<engine>-<model>-<variant>/`.
"""
from __future__ import annotations

import os
import re
import socket
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import UserError

# Engine -> variants it runs by default, and the model-store format each variant reads.
ENGINE_VARIANTS = {
    "openai-whisper": {"fp32": "openai"},
    "faster-whisper": {"fp32": "ct2", "int8": "ct2"},
    "ort": {"fp32": "onnx", "int8": "onnx-int8"},
    "hf": {"fp32": "hf"},
}
# Dependency group of pyproject.toml that each engine's image installs.
ENGINE_GROUPS = {name: f"engine-{name}" for name in ENGINE_VARIANTS}
DEFAULT_MEMORY_GB = 8
DEFAULT_TIMEOUT_S = 3600
DEFAULT_HEARTBEAT_S = 30


@dataclass(frozen=True)
class Cell:
    engine: str
    variant: str
    cores: int
    cpuset: tuple[int, ...]

    def name(self, model: str) -> str:
        return f"{self.engine}-{model}-{self.variant}"


@dataclass
class Config:
    sut: str
    model: str
    engines: list[tuple[str, str]]          # (engine, variant) in run order
    cores_list: list[int]
    cpu_pool: list[int]                      # host CPUs the cpusets are drawn from
    memory_gb: float
    repeats: int = 1
    warmup: int = 1
    timeout_s: float = DEFAULT_TIMEOUT_S
    heartbeat_s: float = DEFAULT_HEARTBEAT_S
    results_dir: Path = Path("results")
    models_dir: Path = Path("models")
    audio_dir: Path = Path("audio/synth")
    engine_args: list[str] = field(default_factory=list)

    @property
    def model_dir(self) -> Path:
        from .models.store import model_dir

        return model_dir(self.models_dir, self.model)

    def shape_dir(self, cores: int) -> Path:
        return self.results_dir / self.sut / f"container_{cores}c{_fmt_gb(self.memory_gb)}g"

    def as_dict(self) -> dict:
        d = asdict(self)
        for k in ("results_dir", "models_dir", "audio_dir"):
            d[k] = str(d[k])
        return d


def _fmt_gb(gb: float) -> str:
    return str(int(gb)) if float(gb).is_integer() else f"{gb:g}"


def parse_cpu_list(text: str) -> list[int]:
    """'0-3,8,10-11' -> [0, 1, 2, 3, 8, 10, 11] (the kernel's cpulist format)."""
    cpus: set[int] = set()
    for part in filter(None, (p.strip() for p in text.split(","))):
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            raise UserError(f"CPU list {text!r}: {part!r} is not a CPU number or range like 0-3")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi < lo:
            raise UserError(f"CPU list {text!r}: range {part!r} runs backwards")
        cpus.update(range(lo, hi + 1))
    return sorted(cpus)


def format_cpu_list(cpus) -> str:
    cpus = sorted(cpus)
    parts, start = [], None
    for i, c in enumerate(cpus):
        if start is None:
            start = c
        if i + 1 == len(cpus) or cpus[i + 1] != c + 1:
            parts.append(f"{start}" if start == c else f"{start}-{c}")
            start = None
    return ",".join(parts)


def physical_cores(cpus: list[int], sysfs: Path = Path("/sys/devices/system/cpu")) -> list[list[int]]:
    """The CPUs grouped by physical core (SMT siblings together), ordered by their lowest CPU."""
    groups: dict[tuple, list[int]] = {}
    for cpu in cpus:
        topo = sysfs / f"cpu{cpu}" / "topology"
        try:
            key = (int((topo / "physical_package_id").read_text()), int((topo / "core_id").read_text()))
        except (OSError, ValueError):  # no topology exposed (some VMs): every CPU is its own core
            key = ("cpu", cpu)
        groups.setdefault(key, []).append(cpu)
    return sorted((sorted(g) for g in groups.values()), key=lambda g: g[0])


def choose_cpuset(pool: list[int], n: int, sysfs: Path = Path("/sys/devices/system/cpu")) -> tuple[list[int], dict]:
    """n CPUs from the pool, whole physical cores first so that SMT siblings sit together."""
    cores = physical_cores(pool, sysfs)
    chosen: list[int] = []
    used_cores = []
    for core in cores:
        if len(chosen) >= n:
            break
        take = core[: n - len(chosen)]
        chosen.extend(take)
        used_cores.append(take)
    smt = {"physical_cores": used_cores, "smt_siblings_in_set": any(len(c) > 1 for c in used_cores),
           "split_core": any(len(t) < len(c) for t, c in zip(used_cores, cores))}
    return chosen, smt


def usable_cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def host_memory_gb() -> float:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30


def default_cores_list(n_cpus: int) -> list[int]:
    """Every power of two up to the host's CPUs (and the full count when it is not one)."""
    out, c = [], 1
    while c <= n_cpus:
        out.append(c)
        c *= 2
    if out[-1] != n_cpus:
        out.append(n_cpus)
    return out


def parse_engines(text: str | None) -> list[tuple[str, str]]:
    """'ort faster-whisper:int8' -> [(ort, fp32), (ort, int8), (faster-whisper, int8)]; empty: all."""
    items = (text or "").replace(",", " ").split()
    if not items:
        items = list(ENGINE_VARIANTS)
    out = []
    for item in items:
        engine, _, variant = item.partition(":")
        if engine not in ENGINE_VARIANTS:
            raise UserError(f"ENGINES: unknown engine {engine!r}; choose from {', '.join(ENGINE_VARIANTS)}")
        variants = [variant] if variant else list(ENGINE_VARIANTS[engine])
        for v in variants:
            if v not in ENGINE_VARIANTS[engine]:
                raise UserError(f"ENGINES: {engine} has no variant {v!r}; it has "
                                f"{', '.join(ENGINE_VARIANTS[engine])}")
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


def _number(value, what: str, kind=float, minimum=0):
    try:
        v = kind(value)
    except (TypeError, ValueError):
        raise UserError(f"{what}={value!r} is not a number") from None
    if v < minimum:
        raise UserError(f"{what}={value!r} must be at least {minimum}")
    return v


def build_config(args, env=os.environ) -> Config:
    """Flags win over the environment variables (CORES_LIST, SUT_NAME, CPUSET, MEMORY_GB, ENGINES,
    MODEL, REPEATS, WARMUP, RUN_TIMEOUT_SEC, MODEL_PROGRESS_INTERVAL_SEC); checks the host can run it."""
    def pick(flag, var, default=None):
        value = getattr(args, flag, None)
        return value if value not in (None, "") else (env.get(var) or default)

    host_cpus = usable_cpus()
    cpuset_text = pick("cpuset", "CPUSET")
    pool = parse_cpu_list(cpuset_text) if cpuset_text else host_cpus
    outside = sorted(set(pool) - set(host_cpus))
    if outside:
        raise UserError(f"CPUSET {cpuset_text}: CPU {format_cpu_list(outside)} is not usable on this host "
                        f"(usable: {format_cpu_list(host_cpus)})")
    cores_text = pick("cores_list", "CORES_LIST")
    if cores_text:
        cores_list = _int_list(cores_text, "CORES_LIST")
    else:
        cores_list = [len(pool)] if cpuset_text else default_cores_list(len(pool))
    too_many = [c for c in cores_list if c > len(pool)]
    if too_many:
        where = f"CPUSET {cpuset_text}" if cpuset_text else "this host"
        raise UserError(f"CORES_LIST asks for {max(too_many)} cores but {where} has {len(pool)} usable CPUs "
                        f"({format_cpu_list(pool)}): use core counts up to {len(pool)}")
    memory_gb = _number(pick("memory_gb", "MEMORY_GB", DEFAULT_MEMORY_GB), "MEMORY_GB", float, 0.1)
    if memory_gb > host_memory_gb():
        raise UserError(f"MEMORY_GB={memory_gb:g} is more than this host's {host_memory_gb():.1f} GiB of memory")
    root = Path(__file__).resolve().parent.parent
    return Config(
        sut=re.sub(r"[^A-Za-z0-9._-]+", "-", pick("sut", "SUT_NAME", socket.gethostname())),
        model=pick("model", "MODEL", "tiny.en"),
        engines=parse_engines(pick("engines", "ENGINES")),
        cores_list=list(dict.fromkeys(cores_list)),
        cpu_pool=pool,
        memory_gb=memory_gb,
        repeats=_number(pick("repeats", "REPEATS", 1), "REPEATS", int, 1),
        warmup=_number(pick("warmup", "WARMUP", 1), "WARMUP", int, 0),
        timeout_s=_number(pick("timeout", "RUN_TIMEOUT_SEC", DEFAULT_TIMEOUT_S), "RUN_TIMEOUT_SEC", float, 1),
        heartbeat_s=_number(pick("heartbeat", "MODEL_PROGRESS_INTERVAL_SEC", DEFAULT_HEARTBEAT_S),
                            "MODEL_PROGRESS_INTERVAL_SEC", float, 1),
        results_dir=Path(pick("results", "RESULTS_DIR", root / "results")),
        models_dir=Path(pick("models_dir", "MODELS_DIR", root / "models")),
        audio_dir=Path(pick("audio_dir", "AUDIO_DIR", root / "audio" / "synth")),
        engine_args=list(getattr(args, "engine_args", None) or []),
    )


def plan_cells(config: Config) -> list[tuple[Cell, dict]]:
    """Every (cell, SMT report) in run order: core counts outer, engines inner, one at a time."""
    cells = []
    for cores in config.cores_list:
        cpus, smt = choose_cpuset(config.cpu_pool, cores)
        for engine, variant in config.engines:
            cells.append((Cell(engine, variant, cores, tuple(cpus)), smt))
    return cells
