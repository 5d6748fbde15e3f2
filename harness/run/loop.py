"""`python -m harness run`: validate, take the engine's lock, build images, then run every cell once per
round (each round in its own shuffled order), give tied leaders extra rounds, and score and report.

Rounds rather than repeats inside one container: drift on the machine (another tenant, thermal state)
then hits every engine alike, and the spread between rounds is what the report's intervals are built on.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import os
import random
import shutil
import stat
import sys
import time
from pathlib import Path

from engines.registry import spec

from ..errors import UserError
from ..files import write_json
from ..layout import PLAN_FILE, RUN_FILE, round_dir
from .config import Cell, Config, plan_cells
from .container import CONTAINER_UID, new_record, run_container
from .cpus import cpu_busy
from .host import fingerprint
from .progress import PlanProgress, fmt_duration
from .signals import Stopped, stop_on_signals

QUIET_SAMPLE_S = 1.0


def validate_inputs(config: Config) -> list[Path]:
    """Models and audio exist and are readable before any container starts; returns the audio files."""
    from engines.audio import list_audio

    model_dir = config.model_dir
    if not (model_dir / "manifest.json").is_file():
        raise UserError(f"model {config.model}: {model_dir} is not prepared: run "
                        f"`python -m harness models prepare --model {config.model}`")
    for engine, variant in config.engines:
        fmt = spec(engine).check_variant(variant)
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
    """Names the corpus by its files' names and sizes: rows are compared only within one corpus."""
    h = hashlib.sha256()
    for f in files:
        h.update(f"{f.relative_to(audio_dir)}\0{f.stat().st_size}\n".encode())
    return h.hexdigest()[:12]


def backup_cell(cell_dir: Path, sut_dir: Path, stamp: str) -> Path | None:
    """A cell about to be re-run moves under backups/<stamp>/, never deleted."""
    if not cell_dir.exists() or not any(cell_dir.iterdir()):
        return None
    target = sut_dir / "backups" / stamp / cell_dir.relative_to(sut_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(cell_dir), str(target))
    return target


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


def run_comparison(config: Config, build: bool = True, client=None, cells: list[Cell] | None = None,
                   host: dict | None = None, plan_file: Path | None = None) -> list[dict]:
    """Every round of every cell (or of the given cells); returns the run records. Raises `Stopped` after a
    clean stop. A fleet passes its SUT's client (a remote engine) and that host's fingerprint. The plan goes
    to the SUT's plan.json unless `plan_file` names another (a run that adds a cell to the SUT's own)."""
    from .images import build_images, docker_client, existing_images, image_tag
    from .lock import harness_lock

    files = validate_inputs(config)
    client = client or docker_client()
    with harness_lock(client, config.sut), stop_on_signals():
        config.sut_dir.mkdir(parents=True, exist_ok=True)
        host = host or fingerprint(client)
        engines = [e for e, _ in config.engines]
        images = build_images(client, engines, config.sut_dir / "logs") if build else \
            existing_images(client, engines)
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        cells = plan_cells(config) if cells is None else cells
        for cell in cells:
            moved = backup_cell(config.cell_dir(cell), config.sut_dir, stamp)
            if moved:
                print(f"  previous {cell.name(config.model)} at {cell.cores}c moved to {moved}", file=sys.stderr)
        corpus = corpus_id(config.audio_dir, files)
        write_json(plan_file or config.sut_dir / PLAN_FILE, {
            "config": config.as_dict(), "host": host, "started_at": stamp, "corpus_id": corpus,
            "n_files": len(files), "cells": [c.name(config.model) + f"@{c.cores}c" for c in cells]})
        records: list[dict] = []
        start = time.monotonic()
        progress = PlanProgress(len(cells) * config.rounds)
        run_round = _round_runner(client, config, images, image_tag, host, corpus, len(files), records, progress)
        for round_index in range(1, config.rounds + 1):
            run_round(round_index, round_order(cells, config.seed, round_index))
        round_index = config.rounds
        while round_index < config.max_rounds:
            tied = cells_to_extend(config, cells)
            if not tied:
                break
            round_index += 1
            print(f"round {round_index}: {len(tied)} cell(s) tied with their leader get another round: "
                  + ", ".join(f"{c.name(config.model)}@{c.cores}c" for c in tied), file=sys.stderr)
            progress.total += len(tied)
            run_round(round_index, round_order(tied, config.seed, round_index))
    failed = [r for r in records if r["status"] != "ok"]
    print(f"{len(records)} runs in {fmt_duration(time.monotonic() - start)}: {len(records) - len(failed)} ok"
          + (f", {len(failed)} not ok: " + ", ".join(f"{r['cell']}@{r['cores']}c round {r['round']} {r['status']}"
                                                   for r in failed) if failed else ""), file=sys.stderr)
    return records


def _round_runner(client, config, images, image_tag, host, corpus, n_files, records, progress):
    def run_round(round_index: int, order: list[Cell]) -> None:
        for cell in order:
            run_dir = round_dir(config.cell_dir(cell), round_index)
            progress.starting(f"round {round_index}: {cell.name(config.model)} on CPUs "
                              f"{','.join(map(str, cell.cpuset))}")
            image_id, image_error = images[cell.engine]
            record = new_record(config, cell, image_tag(cell.engine), image_id, round_index)
            record.host = {**host, "corpus_id": corpus}
            if image_id is None:
                record.status, record.error = "image_build_failed", image_error or "image missing"
                write_json(run_dir / RUN_FILE, record.to_dict())
            else:
                if not config.remote:  # this host's page cache and /proc/stat; a remote host's are not ours
                    record.page_cache_evicted = evict_page_cache(config.model_dir, config.audio_dir)
                    record.quiet = wait_until_quiet(cell.cpuset, config)
                try:
                    run_container(client, config, cell, run_dir, record, n_files)
                except Stopped:
                    records.append(record.to_dict())
                    raise
            records.append(record.to_dict())
            progress.finished()
    return run_round


def cells_to_extend(config: Config, cells: list[Cell]) -> list[Cell]:
    """Cells whose interval still overlaps their comparison's leader after the rounds so far."""
    from ..report.answer import tied_with_leader
    from ..report.cells import build_cell_record

    records = {cell: build_cell_record(config.cell_dir(cell), scored=False) for cell in cells}
    return tied_with_leader(records)


__all__ = ["Stopped", "run_comparison", "validate_inputs", "backup_cell"]
