"""SCENARIOS and the serving settings, from flags or the environment.

SCENARIOS (flag --scenarios): any of single-stream (one file at a time: the comparison of `harness run`,
the default), offline and server (LoadGen, `harness serve`). The defaults are sized for a 2-vCPU host: a
Server point runs SERVE_DURATION_MS (20 s) and at least SERVE_MIN_QUERIES queries, long enough for a
stable rate and a rough tail, far too short for MLPerf's early-stopping estimate of p99; MLPERF_DURATIONS=1
switches to MLPerf's own minimum duration (600 s) and query count (LoadGen's), and then a point meets the
bound only when LoadGen calls the run VALID.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass

from engines.registry import SPECS

from ..errors import UserError
from ..run.settings import number

SERVING_AREA = "serving"          # results/<SUT>/serving/
CELL_RECORD = "serve.json"        # a serving cell's record: layout, tests, capacity, audit, energy
SINGLE_STREAM = "single-stream"
SCENARIO_NAMES = (SINGLE_STREAM, "offline", "server")
DEFAULT_SCENARIOS = (SINGLE_STREAM,)            # `harness run`: today's comparison, unchanged
SERVE_SCENARIOS = ("offline", "server")          # `harness serve`
# p99 latency bound of the Server scenario. MLPerf's speech benchmark (RNN-T) bounded p99 at 1 s for
# streaming-sized samples; a Whisper query is a whole utterance of up to 30 s, which tiny.en on one core
# takes ~2-3 s to transcribe, so 5 s: the transcript of a 30 s utterance arrives within 5 s, 99 times in 100.
DEFAULT_LATENCY_BOUND_MS = 5000.0
LATENCY_PERCENTILE = 0.99
DEFAULT_DURATION_MS = 20_000
DEFAULT_MIN_QUERIES = 10
MLPERF_DURATION_MS = 600_000                     # MLPerf Inference's minimum run of a performance test
MLPERF_MIN_QUERIES = 100                         # LoadGen's own default minimum query count
DEFAULT_SEARCH_STEPS = 5
DEFAULT_BATCH_WAIT_MS = 20.0                     # dynamic batching: how long a worker waits for more queries
DEFAULT_AUDIT_PROBABILITY = 0.25                 # share of Server responses LoadGen logs for the audit


def parse_scenarios(text: str | None, default: tuple[str, ...] = DEFAULT_SCENARIOS) -> tuple[str, ...]:
    items = (text or "").replace(",", " ").split()
    if not items:
        return default
    unknown = [s for s in items if s not in SCENARIO_NAMES]
    if unknown:
        raise UserError(f"SCENARIOS: unknown scenario {unknown[0]!r}; choose from {', '.join(SCENARIO_NAMES)}")
    return tuple(dict.fromkeys(items))


def scenarios_of(args, env=os.environ, default: tuple[str, ...] = DEFAULT_SCENARIOS) -> tuple[str, ...]:
    """The flag, else SCENARIOS, else the default."""
    return parse_scenarios(getattr(args, "scenarios", None) or env.get("SCENARIOS"), default)


@dataclass(frozen=True)
class Layout:
    """W worker processes x T threads (W x T = the cell's cores), and the dynamic batch size N."""
    workers: int
    threads: int
    batch: int = 1

    @property
    def name(self) -> str:
        return f"w{self.workers}t{self.threads}" + (f"-batch{self.batch}" if self.batch > 1 else "")


def layouts_for(cores: int, engine: str, batch_sizes: list[int], wanted: str | None = None) -> list[Layout]:
    """Every W x T = cores (or those of SERVE_LAYOUTS, e.g. "1x2 2x1"); each batch size > 1 adds a
    dynamic-batching layout for engines that batch."""
    shapes = [(w, cores // w) for w in range(1, cores + 1) if cores % w == 0]
    if wanted:
        picked = []
        for item in wanted.replace(",", " ").split():
            w, _, t = item.partition("x")
            if not (w.isdigit() and t.isdigit()):
                raise UserError(f"SERVE_LAYOUTS {wanted!r}: expected WORKERSxTHREADS items such as \"1x2 2x1\"")
            picked.append((int(w), int(t)))
        shapes = [s for s in shapes if s in picked]
    batches = [b for b in batch_sizes if b == 1 or SPECS[engine].batching]
    return [Layout(w, t, b) for b in batches for w, t in shapes]


@dataclass
class ServeSettings:
    scenarios: tuple[str, ...] = SERVE_SCENARIOS
    latency_bound_ms: float = DEFAULT_LATENCY_BOUND_MS
    percentile: float = LATENCY_PERCENTILE
    duration_ms: int = DEFAULT_DURATION_MS
    min_queries: int = DEFAULT_MIN_QUERIES
    mlperf: bool = False
    search_steps: int = DEFAULT_SEARCH_STEPS
    batch_wait_ms: float = DEFAULT_BATCH_WAIT_MS
    audit_probability: float = DEFAULT_AUDIT_PROBABILITY
    layouts: str | None = None
    tdp_w_per_cpu: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def _number(value, name: str, kind=float, low=0.0):
    """run/settings.number, with the serving settings' float floor (its messages say 0.0)."""
    return number(value, name, kind, low)


def build_serve_settings(args, env=os.environ, default_scenarios=SERVE_SCENARIOS) -> ServeSettings:
    """Flags win over LATENCY_BOUND_MS, SERVE_DURATION_MS, SERVE_MIN_QUERIES, MLPERF_DURATIONS, SEARCH_STEPS,
    BATCH_WAIT_MS, AUDIT_PROBABILITY, SERVE_LAYOUTS, TDP_W_PER_CPU and SCENARIOS."""
    def pick(flag, var, default=None):
        value = getattr(args, flag, None)
        return value if value not in (None, "", False) else (env.get(var) or default)

    mlperf = str(pick("mlperf_durations", "MLPERF_DURATIONS", "0")).lower() in ("1", "true", "yes")
    duration = pick("serve_duration_ms", "SERVE_DURATION_MS", MLPERF_DURATION_MS if mlperf else DEFAULT_DURATION_MS)
    queries = pick("serve_min_queries", "SERVE_MIN_QUERIES", MLPERF_MIN_QUERIES if mlperf else DEFAULT_MIN_QUERIES)
    tdp = pick("tdp_w_per_cpu", "TDP_W_PER_CPU")
    probability = _number(pick("audit_probability", "AUDIT_PROBABILITY", DEFAULT_AUDIT_PROBABILITY),
                          "AUDIT_PROBABILITY")
    if probability > 1:
        raise UserError(f"AUDIT_PROBABILITY={probability} must be at most 1")
    return ServeSettings(
        scenarios=parse_scenarios(pick("scenarios", "SCENARIOS"), default_scenarios),
        latency_bound_ms=_number(pick("latency_bound_ms", "LATENCY_BOUND_MS", DEFAULT_LATENCY_BOUND_MS),
                                 "LATENCY_BOUND_MS", float, 1),
        duration_ms=_number(duration, "SERVE_DURATION_MS", int, 0),
        min_queries=_number(queries, "SERVE_MIN_QUERIES", int, 1),
        mlperf=mlperf,
        search_steps=_number(pick("search_steps", "SEARCH_STEPS", DEFAULT_SEARCH_STEPS), "SEARCH_STEPS", int, 1),
        batch_wait_ms=_number(pick("batch_wait_ms", "BATCH_WAIT_MS", DEFAULT_BATCH_WAIT_MS), "BATCH_WAIT_MS"),
        audit_probability=probability,
        layouts=pick("serve_layouts", "SERVE_LAYOUTS"),
        tdp_w_per_cpu=_number(tdp, "TDP_W_PER_CPU") if tdp is not None else None,
    )


def add_serve_arguments(p) -> None:
    p.add_argument("--scenarios", help="single-stream, offline, server (env SCENARIOS; `serve`: \"offline server\")")
    p.add_argument("--latency-bound-ms", dest="latency_bound_ms", help="Server p99 bound (env LATENCY_BOUND_MS; "
                   f"default {DEFAULT_LATENCY_BOUND_MS:.0f})")
    p.add_argument("--serve-duration-ms", dest="serve_duration_ms", help="minimum duration of each LoadGen "
                   f"performance test (env SERVE_DURATION_MS; default {DEFAULT_DURATION_MS})")
    p.add_argument("--serve-min-queries", dest="serve_min_queries", help="minimum queries of each test (env "
                   f"SERVE_MIN_QUERIES; default {DEFAULT_MIN_QUERIES})")
    p.add_argument("--mlperf-durations", dest="mlperf_durations", action="store_true", help="MLPerf's minimum "
                   "duration (600 s) and query count; a point passes only when LoadGen says VALID "
                   "(env MLPERF_DURATIONS=1)")
    p.add_argument("--search-steps", dest="search_steps", help=f"Server QPS probes after the first (env "
                   f"SEARCH_STEPS; default {DEFAULT_SEARCH_STEPS})")
    p.add_argument("--batch-wait-ms", dest="batch_wait_ms", help="dynamic batching: a worker's wait for more "
                   f"queries (env BATCH_WAIT_MS; default {DEFAULT_BATCH_WAIT_MS:.0f})")
    p.add_argument("--audit-probability", dest="audit_probability", help="share of Server responses logged for "
                   f"the audit (env AUDIT_PROBABILITY; default {DEFAULT_AUDIT_PROBABILITY})")
    p.add_argument("--serve-layouts", dest="serve_layouts", help='workers x threads, e.g. "1x2 2x1" (env '
                   "SERVE_LAYOUTS; default: every W x T = cores)")
    p.add_argument("--tdp-w-per-cpu", dest="tdp_w_per_cpu", help="energy estimate without RAPL: watts per busy "
                   "CPU (env TDP_W_PER_CPU; default from harness/serve/energy.py)")
