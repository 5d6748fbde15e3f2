"""`python -m harness run`: validate, take the engine's lock, build images, then race the cells in rounds
inside the time budget (evidence/racing.py), scoring each round so the accuracy gate acts at once.

Rounds rather than repeats inside one container: the run (a cell in one round) is the replicate, and
contenders run back to back so that each pair shares the machine's drift.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import os
import random
import secrets
import shutil
import stat
import sys
import time
from pathlib import Path

from engines.registry import BASELINE_ENGINE, SPECS

from ..errors import UserError
from ..files import read_json, write_json
from ..layout import CELL_FILE, PLAN_FILE, RUN_FILE, RUNS_DIR, SHAPE_RE, cell_label, round_dir
from .config import Cell, Config, plan_cells
from .container import CONTAINER_UID, new_record, run_container
from .cpus import cpu_busy
from .host import fingerprint
from .housekeeping import housekeeping
from .progress import PlanProgress, fmt_duration
from .signals import Stopped, stop_on_signals

QUIET_SAMPLE_S = 1.0
RERUNS_PER_ROUND = 1     # a run under load is re-run once; a second loaded attempt stays, marked, uncounted


def validate_inputs(config: Config) -> list[Path]:
    """Models and audio exist and are readable before any container starts; returns the audio files."""
    from engines.audio import list_audio

    model_dir = config.model_dir
    if not (model_dir / "manifest.json").is_file():
        raise UserError(f"model {config.model}: {model_dir} is not prepared: run "
                        f"`python -m harness models prepare --model {config.model}`")
    for engine, variant in config.engines:
        fmt = SPECS[engine].check_variant(variant)
        if not (model_dir / fmt).is_dir():
            raise UserError(f"model {config.model}: {model_dir / fmt} (needed by {engine} {variant}) is missing: "
                            f"run `python -m harness models prepare --model {config.model} --force`")
    if not config.audio_dir.is_dir():
        raise UserError(f"audio folder {config.audio_dir} does not exist: run `python -m harness audio synth` "
                        f"or set AUDIO_DIR to a folder of audio files")
    if os.getuid() == 0:  # containers then run as an unprivileged user, who must be able to read the inputs
        for path in (config.audio_dir, model_dir):
            if not _world_readable(path):
                raise UserError(f"{path} is not readable by the containers' unprivileged user (uid "
                                f"{CONTAINER_UID}): `chmod -R o+rX {path}`")
    files = list_audio(config.audio_dir)
    if not files:
        raise UserError(f"audio folder {config.audio_dir} holds no audio files: run `python -m harness audio "
                        f"synth` or set AUDIO_DIR")
    return files


def _world_readable(root: Path) -> bool:
    """The folder and everything in it can be read by others (files o+r, folders o+rx)."""
    for path in [root, *root.rglob("*")]:
        mode = path.stat().st_mode
        need = stat.S_IROTH | (stat.S_IXOTH if path.is_dir() else 0)
        if mode & need != need:
            return False
    return True


def corpus_id(audio_dir: Path, files: list[Path]) -> str:
    """Names the corpus by its files' names and contents: rows are compared only within one corpus."""
    h = hashlib.sha256()
    for f in files:
        h.update(f"{f.relative_to(audio_dir)}\0".encode())
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        h.update(b"\n")
    return h.hexdigest()[:12]


def backup_cell(cell_dir: Path, sut_dir: Path, stamp: str) -> Path | None:
    """A cell about to be re-run moves under backups/<stamp>/, never deleted."""
    if not cell_dir.exists() or not any(cell_dir.iterdir()):
        return None
    target = sut_dir / "backups" / stamp / cell_dir.relative_to(sut_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(cell_dir), str(target))
    return target


def other_machine_cells(sut_dir: Path, host: dict) -> list[tuple[Path, str]]:
    """Cells in the SUT's folder measured on another machine (another host fingerprint): (folder, CPU)."""
    from ..evidence.rows import fingerprint_id

    mine = fingerprint_id(host)
    out = []
    for shape in sorted(p for p in sut_dir.glob("container_*") if SHAPE_RE.fullmatch(p.name)):
        for cell_dir in sorted(p for p in shape.iterdir() if p.is_dir()):
            record = read_json(cell_dir / CELL_FILE) or {}
            theirs = record.get("host") or next((read_json(r / RUN_FILE) or {} for r in sorted(
                cell_dir.glob("round-*")) if (r / RUN_FILE).is_file()), {}).get("host")
            if theirs and mine and fingerprint_id(theirs) not in (None, mine):
                out.append((cell_dir, theirs.get("cpu_model") or "unknown CPU"))
    return out


def evict_page_cache(*roots: Path) -> bool:
    """Drop the inputs' pages from the page cache, so every run reads its model cold and the container's
    memory peak is not lowered or raised by which container read a file first. True when it worked."""
    ok = True
    for root in roots:
        for path in root.rglob("*"):
            if not path.is_file():
                continue
            try:
                fd = os.open(path, os.O_RDONLY)
                try:
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                finally:
                    os.close(fd)
            except OSError:
                ok = False
    return ok


def wait_until_quiet(cpus, config: Config) -> dict:
    """Sample the cell's CPUs; while something else keeps them busier than the threshold, wait
    (bounded). The record says what was seen, and flags a run that started under load."""
    start = time.monotonic()
    busy = cpu_busy(cpus, QUIET_SAMPLE_S)
    peak = max(busy.values(), default=0.0)
    announced = False
    while peak > config.quiet_busy and time.monotonic() - start < config.quiet_wait_s:
        if not announced:
            print(f"  CPUs {','.join(map(str, cpus))} are {100 * peak:.0f}% busy before the run: waiting up to "
                  f"{config.quiet_wait_s:.0f} s for them to quieten", file=sys.stderr)
            announced = True
        busy = cpu_busy(cpus, QUIET_SAMPLE_S)
        peak = max(busy.values(), default=0.0)
    return {"busy_share": round(peak, 3), "threshold": config.quiet_busy,
            "waited_s": round(time.monotonic() - start - QUIET_SAMPLE_S, 1), "loaded": peak > config.quiet_busy}


def round_order(cells: list[Cell], seed: int, round_index: int) -> list[Cell]:
    order = list(cells)
    random.Random(f"{seed}:{round_index}").shuffle(order)
    return order


def reference_cell(config: Config, cells: list[Cell], corpus: str, host: dict) -> Cell | None:
    """The gate's declared reference (the baseline engine's batch-1 run on this corpus and host), added for
    one round at the fewest cores when neither the plan nor the SUT's folder has one."""
    from ..evidence.records import build_cell_record
    from ..evidence.rows import fingerprint_id, row_from_cell

    variant = SPECS[BASELINE_ENGINE].default_variant
    if config.area:  # discover and other areas find the reference in the SUT's own folder themselves
        return None
    if any(c.engine == BASELINE_ENGINE and c.variant == variant and c.batch == 1 for c in cells):
        return None
    for shape in config.sut_dir.glob("container_*"):
        cell_dir = shape / Cell(BASELINE_ENGINE, variant, 1, ()).name(config.model)
        if cell_dir.is_dir():
            row = row_from_cell(build_cell_record(cell_dir, scored=False))
            # reused when it ran the same corpus on this machine; a run with engine flags (another decoding)
            # gets its own, since the gate compares like with like
            if row["status"] == "ok" and row["corpus_id"] == corpus and row["fingerprint"] == fingerprint_id(host) \
                    and not config.engine_args:
                return None
    smallest = min(cells, key=lambda c: c.cores) if cells else None
    if smallest is None:
        return None
    return Cell(BASELINE_ENGINE, variant, smallest.cores, smallest.cpuset, smallest.smt, 1, reference=True)


def run_comparison(config: Config, build: bool = True, client=None, cells: list[Cell] | None = None,
                   host: dict | None = None, plan_file: Path | None = None) -> list[dict]:
    """Race every cell (or the given cells) in rounds; returns the run records. Raises `Stopped` after a
    clean stop. A fleet passes its SUT's client (a remote engine) and that host's fingerprint. The plan goes
    to the SUT's plan.json unless `plan_file` names another (a run that adds a cell to the SUT's own)."""
    from .images import build_images, docker_client, existing_images, image_tag
    from .lock import harness_lock

    files = validate_inputs(config)
    client = client or docker_client()
    with harness_lock(client, config.sut), stop_on_signals():
        config.sut_dir.mkdir(parents=True, exist_ok=True)
        host = host or fingerprint(client)
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        run_id = f"{stamp}-{secrets.token_hex(2)}"
        corpus = corpus_id(config.audio_dir, files)
        cells = plan_cells(config) if cells is None else list(cells)
        reference = reference_cell(config, cells, corpus, host)
        if reference is not None and not build:  # --no-build runs exactly the planned cells
            print(f"  the accuracy gate's reference ({BASELINE_ENGINE}) has no run on this corpus and host, and "
                  f"--no-build runs only the planned cells: accuracy is not gated in this answer", file=sys.stderr)
            reference = None
        if reference is not None:
            print(f"  the accuracy gate's reference ({BASELINE_ENGINE}) has no run on this corpus and host: "
                  f"it runs once, at {reference.cores}c", file=sys.stderr)
            cells.append(reference)
        engines = sorted({c.engine for c in cells})
        images = build_images(client, engines, config.sut_dir / "logs") if build else \
            existing_images(client, engines)
        _move_aside(config, cells, stamp, host)
        with housekeeping(config.housekeeping_cpu, config.remote) as kept:
            plan = {"config": config.as_dict(), "host": host, "started_at": stamp, "run_id": run_id,
                    "corpus_id": corpus, "n_files": len(files), "housekeeping": kept,
                    "cells": [c.label(config.model) for c in cells]}
            write_json(plan_file or config.sut_dir / PLAN_FILE, plan)
            write_json(config.sut_dir / RUNS_DIR / f"{run_id}.json", plan)
            race = Race(client, config, images, image_tag, host, corpus, len(files), run_id)
            race.run(cells)
    race.print_summary()
    return race.records


def _move_aside(config: Config, cells: list[Cell], stamp: str, host: dict) -> None:
    for cell in cells:
        moved = backup_cell(config.cell_dir(cell), config.sut_dir, stamp)
        if moved:
            print(f"  previous {cell.label(config.model)} moved to {moved}", file=sys.stderr)
    if config.remote:
        return
    others = other_machine_cells(config.sut_dir, host)
    for cell_dir, _ in others:
        backup_cell(cell_dir, config.sut_dir, stamp)
    if others:
        print(f"  {len(others)} cell(s) in {config.sut_dir} were measured on another machine ({others[0][1]}): "
              f"moved to {config.sut_dir / 'backups' / stamp}, out of this machine's answer", file=sys.stderr)


class Race:
    """The rounds of one run: round(s) for every cell, then rounds for the contenders while the budget lasts."""

    def __init__(self, client, config: Config, images, image_tag, host, corpus, n_files, run_id):
        self.client, self.config, self.images, self.image_tag = client, config, images, image_tag
        self.host, self.corpus, self.n_files, self.run_id = host, corpus, n_files, run_id
        self.records: list[dict] = []
        self.start = time.monotonic()
        self.rounds_run: list[int] = []       # cells per round
        self.stop_reason = ""
        self.progress: PlanProgress | None = None

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def run(self, cells: list[Cell]) -> None:
        config = self.config
        first = [c for c in cells if not c.reference]
        self.start = time.monotonic()
        self.progress = PlanProgress(len(cells) + len(first) * (config.rounds - 1), budget_s=config.time_budget_s)
        for k in range(1, config.rounds + 1):
            self.run_round(k, round_order(cells if k == 1 else first, config.seed, k))
        k = config.rounds + 1
        while True:
            plan = self.next_round(cells, k)
            if not plan:
                break
            self.progress.total += len(plan)
            print(f"round {k}: {len(plan)} contender(s) back to back: "
                  + ", ".join(c.label(config.model) for c in plan), file=sys.stderr)
            self.run_round(k, plan)
            k += 1

    def next_round(self, cells: list[Cell], k: int) -> list[Cell]:
        from ..evidence.gate import add_derived
        from ..evidence.racing import next_round

        rows, by_key = self.rows(cells)
        add_derived(rows)
        plan = next_round(rows, k, self.elapsed(), self.config.time_budget_s, self.config.max_rounds,
                          self.config.seed)
        todo = [by_key[(r["shape"], r["cell"])] for r in plan.cells if (r["shape"], r["cell"]) in by_key]
        todo = [c for c in todo if not c.reference]
        if not todo:
            self.stop_reason = plan.reason if not plan.cells else "no contender is in this run's plan"
        return todo

    def rows(self, cells: list[Cell]) -> tuple[list[dict], dict]:
        """Every cell in the SUT's folder as a row (older cells of this machine compete too); the keys of
        this run's own cells."""
        from ..evidence.records import build_cell_record
        from ..evidence.rows import row_from_cell
        from ..layout import cell_dirs

        by_key = {(self.config.cell_dir(c).parent.name, self.config.cell_dir(c).name): c for c in cells}
        rows = []
        for cell_dir in cell_dirs(self.config.sut_dir.parent):
            if cell_dir.parent.parent != self.config.sut_dir:
                continue
            rows.append(row_from_cell(build_cell_record(cell_dir)))
        return rows, by_key

    def run_round(self, k: int, order: list[Cell]) -> None:
        loaded = []
        run_dirs = []
        for cell in order:
            record = self.run_one(cell, k)
            run_dirs.append(round_dir(self.config.cell_dir(cell), k))
            # a run that finished under load is re-run; one that failed says nothing about speed
            if record["status"] == "ok" and ((record.get("quiet") or {}).get("loaded")
                                             or (record.get("foreign_busy_share") or 0) > self.config.quiet_busy):
                loaded.append(cell)
        for cell in loaded[:]:
            run_dir = round_dir(self.config.cell_dir(cell), k)
            aside = run_dir.with_name(f"{run_dir.name}-loaded")
            if aside.exists():
                continue
            run_dir.rename(aside)
            print(f"  {cell.label(self.config.model)} round {k} ran while its CPUs were busy: re-run once",
                  file=sys.stderr)
            self.progress.total += 1
            self.run_one(cell, k)
        self.rounds_run.append(len(order))
        self.score(run_dirs)

    def run_one(self, cell: Cell, k: int) -> dict:
        config = self.config
        run_dir = round_dir(config.cell_dir(cell), k)
        self.progress.starting(f"round {k}: {cell.label(config.model)} on CPUs {','.join(map(str, cell.cpuset))}",
                               self.elapsed())
        image_id, image_error = self.images[cell.engine]
        record = new_record(config, cell, self.image_tag(cell.engine), image_id, k)
        record.run_id, record.seed, record.commit = self.run_id, config.seed, self.host.get("harness_commit")
        record.replica = cell.replica
        record.host = {**self.host, "corpus_id": self.corpus}
        if image_id is None:
            record.status, record.error = "image_build_failed", image_error or "image missing"
            write_json(run_dir / RUN_FILE, record.to_dict())
        else:
            if not config.remote:  # this host's page cache and /proc/stat; a remote host's are not ours
                record.page_cache_evicted = evict_page_cache(config.model_dir, config.audio_dir)
                record.quiet = wait_until_quiet(cell.cpuset, config)
            try:
                run_container(self.client, config, cell, run_dir, record, self.n_files)
            except Stopped:
                self.records.append(record.to_dict())
                raise
        self.records.append(record.to_dict())
        self.progress.finished()
        return self.records[-1]

    def score(self, run_dirs: list[Path]) -> None:
        from ..scoring.score import score_runs

        score_runs([d for d in run_dirs if d.is_dir()], self.config.audio_dir)

    def print_summary(self) -> None:
        failed = [r for r in self.records if r["status"] != "ok"]
        rounds = (f"round 1: {self.rounds_run[0]} cells" + (f", then {len(self.rounds_run) - 1} round(s) of "
                  f"{'/'.join(str(n) for n in self.rounds_run[1:])} contender(s)" if len(self.rounds_run) > 1 else "")
                  if self.rounds_run else "no round")
        not_ok = ", ".join(f"{cell_label(r['cell'], r['cores'])} round {r['round']} {r['status']}" for r in failed)
        print(f"{len(self.records)} runs in {fmt_duration(self.elapsed())} ({rounds}; stopped: "
              f"{self.stop_reason or 'every round planned ran'}): {len(self.records) - len(failed)} ok"
              + (f", {len(failed)} not ok: {not_ok}" if failed else ""), file=sys.stderr)
