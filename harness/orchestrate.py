"""`python -m harness run`: validate, build images, run every cell one at a time, then score and report."""
from __future__ import annotations

import datetime as dt
import os
import platform
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

from .container_run import CONTAINER_UID, RUN_FILE, base_record, run_cell
from .files import write_json
from .errors import UserError
from .plan import ENGINE_GROUPS, ENGINE_VARIANTS, Config, plan_cells
from .progress import PlanProgress, fmt_duration

ROOT = Path(__file__).resolve().parent.parent


def validate_inputs(config: Config) -> int:
    """Models and audio exist before any container starts; returns the number of audio files."""
    from engines.audio import list_audio

    model_dir = config.model_dir
    if not (model_dir / "manifest.json").is_file():
        raise UserError(f"model {config.model}: {model_dir} is not prepared: run "
                        f"`python -m harness models prepare --model {config.model}`")
    for engine, variant in config.engines:
        fmt = ENGINE_VARIANTS[engine][variant]
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
    n_files = len(list_audio(config.audio_dir))
    if n_files == 0:
        raise UserError(f"audio folder {config.audio_dir} holds no audio files: run `python -m harness audio "
                        f"synth` or set AUDIO_DIR")
    return n_files


def _world_readable(root: Path) -> bool:
    """The folder and everything in it can be read by others (files o+r, folders o+rx)."""
    for path in [root, *root.rglob("*")]:
        mode = path.stat().st_mode
        need = stat.S_IROTH | (stat.S_IXOTH if path.is_dir() else 0)
        if mode & need != need:
            return False
    return True


def host_environment(client) -> dict:
    cpu_model = next((ln.split(":", 1)[1].strip() for ln in _read("/proc/cpuinfo").splitlines()
                      if ln.startswith("model name")), platform.processor())
    try:
        docker_version = client.version().get("Version")
    except Exception:
        docker_version = None
    return {"hostname": platform.node(), "cpu_model": cpu_model, "kernel": platform.release(),
            "cgroup": "v2" if Path("/sys/fs/cgroup/cgroup.controllers").exists() else "v1",
            "docker": docker_version, "python": platform.python_version(), "harness_commit": _git_commit()}


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def backup_cell(cell_dir: Path, sut_dir: Path, stamp: str) -> Path | None:
    """A finished (or partial) cell about to be re-run moves under backups/<stamp>/, never deleted."""
    if not cell_dir.exists() or not any(cell_dir.iterdir()):
        return None
    target = sut_dir / "backups" / stamp / cell_dir.relative_to(sut_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(cell_dir), str(target))
    return target


def build_images(client, engines: list[str], log_dir: Path) -> dict[str, tuple[str | None, str | None]]:
    """engine -> (image id, error); one failing image does not stop the others."""
    from .images import ImageBuildError, build_image, ensure_base_image, image_tag, stage_build_inputs

    engines = list(dict.fromkeys(engines))
    base = ensure_base_image(client)
    stage_build_inputs({ENGINE_GROUPS[e] for e in engines})
    out = {}
    for engine in engines:
        print(f"building image {image_tag(engine)} from {base}", file=sys.stderr)
        try:
            out[engine] = (build_image(client, engine, ENGINE_GROUPS[engine], base,
                                       log_dir / f"image-{engine}.log"), None)
        except ImageBuildError as exc:
            print(f"error: {exc}", file=sys.stderr)
            out[engine] = (None, str(exc))
        except Exception as exc:  # the Docker API can fail mid-build (daemon restart, disk full)
            print(f"error: image {image_tag(engine)}: {exc}", file=sys.stderr)
            out[engine] = (None, f"image {image_tag(engine)}: {str(exc).splitlines()[0][:300]}")
    return out


def run_comparison(config: Config, build: bool = True) -> list[dict]:
    from .images import docker_client, image_tag

    n_files = validate_inputs(config)
    client = docker_client()
    sut_dir = config.results_dir / config.sut
    sut_dir.mkdir(parents=True, exist_ok=True)
    env = host_environment(client)
    images = build_images(client, [e for e, _ in config.engines], sut_dir / "logs") if build else \
        {e: (_existing_image(client, image_tag(e)), None) for e, _ in config.engines}
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    cells = plan_cells(config)
    write_json(sut_dir / "plan.json", {"config": config.as_dict(), "host": env, "started_at": stamp,
                                              "cells": [c.name(config.model) + f"@{c.cores}c" for c, _ in cells]})
    overall = PlanProgress(len(cells))
    records = []
    start = time.monotonic()
    for cell, smt in cells:
        cell_dir = config.shape_dir(cell.cores) / cell.name(config.model)
        moved = backup_cell(cell_dir, sut_dir, stamp)
        if moved:
            print(f"  previous {cell_dir.name} moved to {moved}", file=sys.stderr)
        overall.starting(f"{cell.name(config.model)} on CPUs {','.join(map(str, cell.cpuset))}")
        image_id, image_error = images[cell.engine]
        if image_id is None:
            record = _not_run(config, cell, smt, image_tag(cell.engine), image_error or "image missing")
            cell_dir.mkdir(parents=True, exist_ok=True)
        else:
            record = run_cell(client, config, cell, smt, cell_dir, image_tag(cell.engine), image_id, n_files)
        record["host"] = env
        write_json(cell_dir / RUN_FILE, record)
        records.append(record)
        overall.finished()
    failed = [r for r in records if r["status"] not in ("ok",)]
    print(f"{len(records)} runs in {fmt_duration(time.monotonic() - start)}: {len(records) - len(failed)} ok"
          + (f", {len(failed)} not ok: " + ", ".join(f"{r['cell']}@{r['cores']}c {r['status']}" for r in failed)
             if failed else ""), file=sys.stderr)
    return records


def _existing_image(client, tag: str) -> str | None:
    from docker.errors import ImageNotFound

    try:
        return client.images.get(tag).id
    except ImageNotFound:
        return None


def _not_run(config: Config, cell, smt: dict, image: str, error: str) -> dict:
    return {**base_record(config, cell, smt, image, None), "status": "image_build_failed", "error": error,
            "exit_code": None, "oom_killed": False, "timed_out": False, "host_wall_s": None}


def score_and_report(config: Config) -> None:
    from .cli_run import score_results

    sut_dir = config.results_dir / config.sut
    score_results(sut_dir, config.audio_dir)
    from .report import write_report

    write_report(config.results_dir)
