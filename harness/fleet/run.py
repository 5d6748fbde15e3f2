"""`python -m harness fleet run`: every SUT of the fleet file in parallel, the cells within one SUT one at
a time, each on its own Docker engine reached through Docker's remote API.

Per SUT: connect, put the engine images there (kept, loaded from the controller's engine, or built), send
the model files and the corpus into volumes named by their content (re-hashed there before use; only what
differs is sent), run the cells that are missing or not complete in `results/<SUT>/`, and bring each run's
results back. A SUT that
fails (unreachable, a build or a transfer that fails, a full disk, a killed engine) is recorded in
`results/fleet.json` and does not stop the others. Scores and the report (one section per SUT and the
comparison across them) follow.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import threading
import time
import traceback
from pathlib import Path

from engines.results import Status

from ..errors import UserError
from ..files import read_json, write_json
from ..layout import cell_label, round_dirs
from ..redact import endpoint_alias, scrub
from ..run.config import Config, build_config, plan_cells
from ..run.progress import fmt_duration, set_prefix
from .config import Fleet, FleetSut

FLEET_FILE = "fleet.json"   # results/: each SUT's outcome in the last fleet run


def sut_config(sut: FleetSut, fleet: Fleet, results: Path, models: Path, audio: Path, n_cpus: int) -> Config:
    """The SUT's configuration through the same table, defaults and checks as `harness run` (run/settings.py):
    the fleet file's [defaults] and the SUT's own keys as flags, that machine's CPUs as the host's."""
    values = {**fleet.defaults, "sut": sut.name, "cpuset": sut.cpuset, "cores_list": sut.cores_list,
              "memory_gb": sut.memory_gb, "results": str(results), "models_dir": str(models),
              "audio_dir": str(audio)}
    args = argparse.Namespace(**{k: None if v is None else str(v) for k, v in values.items()})
    try:
        config = build_config(args, env={}, host_cpus=list(range(n_cpus)), host_memory=float("inf"))
    except UserError as exc:
        raise UserError(f"{sut.name}: {exc}") from None
    return dataclasses.replace(config, price_per_core_hour=sut.price_per_core_hour)


def complete(config: Config, cell) -> bool:
    """Every round of the cell finished ok in an earlier run: a re-run leaves it alone."""
    rounds = round_dirs(config.cell_dir(cell))
    oks = [r for r in rounds if (read_json(r / "run.json") or {}).get("status") == Status.OK]
    return len(oks) >= config.rounds and len(oks) == len(rounds)


def run_sut(sut: FleetSut, fleet: Fleet, results: Path, models: Path, audio: Path, build: bool) -> dict:
    """One SUT from connection to fetched results; returns its outcome (never raises but for a stop)."""
    from ..run.images import docker_client, image_tag
    from ..run.loop import run_comparison, validate_inputs
    from . import remote

    set_prefix(f"[{sut.name}] ")
    start = time.monotonic()
    # results/fleet.json is tracked: the endpoint as scheme and host alias, no user, port or path
    outcome = {"sut": sut.name, "endpoint": endpoint_alias(sut.docker) or f"context {sut.context}",
               "status": "failed", "error": "", "bytes_sent": 0, "cells_run": 0, "cells_kept": 0}
    if sut.insecure:
        outcome["insecure"] = "tcp:// without verified TLS (insecure = true in the fleet file)"
    try:
        client = remote.connect(sut)
        config = sut_config(sut, fleet, results, models, audio, client.info().get("NCPU") or 1)
        validate_inputs(config)
        engines = [e for e, _ in config.engines]
        try:
            local = docker_client()  # the controller's own engine, where its images are
        except UserError:
            local = None
        images = remote.ensure_images(client, local, engines, config.sut_dir / "logs", build)
        failed = {e: err for e, (image_id, err) in images.items() if image_id is None}
        if len(failed) == len(images):
            raise UserError(f"no engine image on {sut.name}: {next(iter(failed.values()))}")
        helper = image_tag(next(e for e in engines if e not in failed))
        host = remote.fingerprint(client, helper, outcome["endpoint"])
        if sut.insecure:
            host["docker_insecure"] = outcome["insecure"]
        inputs = {"models": (config.model_dir, remote.model_files(config.model_dir, config.engines)),
                  "audio": (config.audio_dir, remote.audio_files(config.audio_dir))}
        volumes = {kind: remote.input_volume(kind, files) for kind, (_, files) in inputs.items()}
        print(f"[{sut.name}] inputs: checking volumes {volumes['models']} and {volumes['audio']}", file=sys.stderr)
        outcome["bytes_sent"] = sum(remote.sync_volume(client, volumes[kind], root, files, helper)
                                    for kind, (root, files) in inputs.items())
        print(f"[{sut.name}] inputs: {outcome['bytes_sent'] / 1e6:.1f} MB sent", file=sys.stderr)
        config = dataclasses.replace(config, volumes=volumes)
        cells = plan_cells(config)
        todo = [c for c in cells if not complete(config, c)]
        outcome["cells_kept"] = len(cells) - len(todo)
        records = run_comparison(config, build=False, client=client, cells=todo, host=host) if todo else []
        outcome["cells_run"] = len(todo)
        bad = [r for r in records if r["status"] != Status.OK]
        outcome["status"] = "ok" if not bad else "partial"
        outcome["error"] = "; ".join(f"{cell_label(r['cell'], r['cores'])} {r['status']}" for r in bad)
    except UserError as exc:
        outcome["error"] = scrub(str(exc))
    except Exception as exc:  # the engine went away, a transfer or a build failed, a disk filled: this SUT only
        traceback.print_exc(file=sys.stderr)
        outcome["error"] = scrub(f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}")
    outcome["seconds"] = round(time.monotonic() - start, 1)
    print(f"[{sut.name}] {outcome['status']} in {fmt_duration(outcome['seconds'])}"
          + (f": {outcome['error']}" if outcome["error"] else ""), file=sys.stderr)
    return outcome


def run_fleet(fleet: Fleet, results: Path, models: Path, audio: Path, build: bool = True,
              parallel: bool = True) -> list[dict]:
    """Every SUT (in parallel threads unless told otherwise); the outcomes, also in results/fleet.json."""
    from ..report import write_report
    from ..run.signals import Stopped, stop_on_signals
    from ..scoring.score import score_results

    outcomes: dict[str, dict] = {}
    start = time.monotonic()

    def work(sut):
        try:
            outcomes[sut.name] = run_sut(sut, fleet, results, models, audio, build)
        except Stopped as exc:
            outcomes[sut.name] = {"sut": sut.name, "status": "interrupted", "error": f"stopped by {exc.name}"}

    with stop_on_signals():
        if parallel:
            threads = [threading.Thread(target=work, args=(s,), name=s.name) for s in fleet.suts]
            for t in threads:
                t.start()
            try:
                while any(t.is_alive() for t in threads):
                    for t in threads:
                        t.join(0.2)
            except Stopped:
                for t in threads:  # each stops its own container, records the round, and returns
                    t.join()
                raise
        else:
            for sut in fleet.suts:
                work(sut)
    wall = time.monotonic() - start
    ordered = [outcomes[s.name] for s in fleet.suts if s.name in outcomes]
    write_json(results / FLEET_FILE, {"parallel": parallel, "wall_s": round(wall, 1), "suts": ordered})
    for o in ordered:
        if (results / o["sut"]).is_dir():
            score_results(results / o["sut"], audio, quiet=True)
    write_report(results)
    print(f"fleet: {len(ordered)} SUT(s) in {fmt_duration(wall)}: "
          + ", ".join(f"{o['sut']} {o['status']}" for o in ordered), file=sys.stderr)
    return ordered
