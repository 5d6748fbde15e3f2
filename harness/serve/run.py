"""`python -m harness serve`: every serving cell's tests, its capacity search, accuracy, audit and energy.

For each engine variant, core count and worker layout (harness/serve/settings.py), in plan order:
  1. accuracy: LoadGen's AccuracyOnly in the Offline scenario, every query once;
  2. offline: a performance run, throughput X (queries per second); its rate estimate from step 1;
  3. server: the capacity search over Poisson arrival rates below X (harness/serve/search.py);
  4. the audit: responses sampled under load against step 1's (harness/serve/audit.py);
  5. serve.json in the cell's folder; the report (harness/report/capacity.py) reads these.
One run per point: no repeats, so the capacity table has no intervals; its points are all kept.
"""
from __future__ import annotations

import datetime as dt
import sys
import time
from pathlib import Path

from engines.registry import BASELINE_ENGINE, SPECS

from ..audio.corpus import load_corpus
from ..files import read_json_object, write_json
from ..layout import RUN_FILE, round_dirs
from ..run.config import Cell, Config
from ..run.cpus import choose_cpuset
from ..run.loop import backup_cell, corpus_id, validate_inputs
from ..run.progress import fmt_duration
from ..scoring.metrics import read_transcripts
from .audit import accuracy, audit
from .cells import Test, TestRunner, cell_name
from .energy import DEFAULT_TDP_W_PER_CPU, idle_watts, rapl_packages
from .search import Search
from .settings import CELL_RECORD, SERVING_AREA, Layout, ServeSettings, layouts_for

ACCURACY_QPS = 100.0   # the accuracy run issues every query at once (Offline); the rate only sizes the query


def plan_serving(config: Config, settings: ServeSettings) -> list[tuple[Cell, Layout]]:
    out = []
    for cores in config.cores_list:
        cpus, smt = choose_cpuset(config.cell_pool, cores)
        for engine, variant in config.engines:
            for layout in layouts_for(cores, engine, config.batch_sizes, settings.layouts):
                out.append((Cell(engine, variant, cores, tuple(cpus), smt, 1), layout))
    return out


def baseline_transcripts(config: Config) -> dict[str, str] | None:
    """The baseline engine's single-stream transcripts of this model on this SUT, if a complete run exists."""
    name = f"{BASELINE_ENGINE}-{config.model}-{SPECS[BASELINE_ENGINE].default_variant}"
    for shape in sorted((config.results_dir / config.sut).glob("container_*")):
        for round_dir in round_dirs(shape / name):
            if (read_json_object(round_dir / RUN_FILE) or {}).get("status") == "ok":
                return read_transcripts(round_dir)
    return None


def serve_cell(runner: TestRunner, cell: Cell, layout: Layout, cell_dir: Path, references: dict,
               baseline: dict | None) -> dict:
    settings, config = runner.settings, runner.config
    record = {"engine": cell.engine, "variant": cell.variant, "model": config.model, "sut": config.sut,
              "cores": cell.cores, "cpuset": list(cell.cpuset), "layout": {"workers": layout.workers,
              "threads": layout.threads, "batch": layout.batch, "name": layout.name},
              "settings": settings.as_dict(), "host": runner.host, "idle_w": runner.idle_w, "tests": []}
    acc = runner.run(cell, layout, Test("accuracy", "offline", "accuracy", ACCURACY_QPS, 0, 1), cell_dir)
    record["tests"].append(acc)
    record["accuracy"] = accuracy(cell_dir / "accuracy", references, baseline) if acc["status"] == "ok" else None
    served = (acc.get("sut") or {})
    estimate = served.get("completed_samples", 0) / served["served_s"] if served.get("served_s") else 1.0
    # at least every query once: an Offline run of a few queries would measure those queries' lengths
    n_queries = max(served.get("completed_samples", 0), settings.min_queries)
    offline = runner.run(cell, layout, Test("offline", "offline", "performance", max(estimate, 0.01),
                                            settings.duration_ms, n_queries, settings.audit_probability), cell_dir)
    record["tests"].append(offline)
    record["offline"] = offline
    x = (offline.get("loadgen") or {}).get("samples_per_second") if offline["status"] == "ok" else None
    record["capacity"] = None
    if "server" in settings.scenarios and x:
        search = Search(x, settings.latency_bound_ms, settings.search_steps, settings.mlperf)

        def measure(qps: float) -> dict:
            return runner.run(cell, layout, Test(f"server-{qps:g}", "server", "performance", qps,
                                                 settings.duration_ms, settings.min_queries,
                                                 settings.audit_probability), cell_dir)

        record["capacity"] = search.run(measure)
        record["server_points"] = search.points
        record["tests"].extend(search.points)
    perf_dirs = [cell_dir / t["test"] for t in record["tests"] if t.get("mode") == "performance"]
    record["audit"] = audit(cell_dir / "accuracy", perf_dirs)
    write_json(cell_dir / CELL_RECORD, record)
    return record


def run_serving(config: Config, settings: ServeSettings, build: bool = True, client=None) -> list[dict]:
    """Every serving cell; returns their records. The Docker engine's lock is held throughout."""
    from ..run.host import fingerprint
    from ..run.images import build_images, docker_client, existing_images, image_tag
    from ..run.lock import harness_lock
    from ..run.signals import stop_on_signals

    config.area = SERVING_AREA
    files = validate_inputs(config)
    references = {u.key: u.reference for u in load_corpus(config.audio_dir)}
    baseline = baseline_transcripts(config)
    client = client or docker_client()
    records = []
    start = time.monotonic()
    with harness_lock(client, config.sut), stop_on_signals():
        config.sut_dir.mkdir(parents=True, exist_ok=True)
        host = {**fingerprint(client), "corpus_id": corpus_id(config.audio_dir, files)}
        engines = sorted({e for e, _ in config.engines})
        images = build_images(client, engines, config.sut_dir / "logs") if build else existing_images(client, engines)
        zones = rapl_packages()
        runner = TestRunner(client, config, settings, images, image_tag, host, zones,
                            settings.tdp_w_per_cpu or DEFAULT_TDP_W_PER_CPU)
        plan = plan_serving(config, settings)
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        print(f"serve: {len(plan)} cell(s), scenarios {' '.join(settings.scenarios)}, p99 bound "
              f"{settings.latency_bound_ms:g} ms, energy from " + ("RAPL" if zones else "the estimate (no RAPL)"),
              file=sys.stderr)
        for n, (cell, layout) in enumerate(plan, 1):
            cell_dir = config.shape_dir(cell.cores) / cell_name(config, cell, layout)
            backup_cell(cell_dir, config.sut_dir, stamp)
            print(f"serve [{n}/{len(plan)}] {cell_dir.name} at {cell.cores}c, {fmt_duration(time.monotonic() - start)} "
                  "so far", file=sys.stderr)
            runner.idle_w = idle_watts(zones) if zones else None
            records.append(serve_cell(runner, cell, layout, cell_dir, references, baseline))
            cap = records[-1]["capacity"]
            print(f"  {cell_dir.name}: capacity " + (f"{cap['target_qps']:g} QPS" if cap else "none")
                  + f" at p99 <= {settings.latency_bound_ms:g} ms; audit {records[-1]['audit']['verdict']}",
                  file=sys.stderr)
    print(f"serve: {len(records)} cell(s) in {fmt_duration(time.monotonic() - start)}", file=sys.stderr)
    return records
