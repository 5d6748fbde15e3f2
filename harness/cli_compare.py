"""Subcommands `run` (the containerized comparison; also what `python -m harness` alone does) and `images`."""
from __future__ import annotations

import sys
from pathlib import Path


def add_run_arguments(p, engine_args: bool = True) -> None:
    p.add_argument("--cores-list", help='core counts, e.g. "1 2 4" (env CORES_LIST; default: powers of two)')
    p.add_argument("--sut", help="name of the system under test (env SUT_NAME; default: hostname)")
    p.add_argument("--cpuset", help="host CPUs to draw from, e.g. 0-7 (env CPUSET; default: all usable)")
    p.add_argument("--memory-gb", help="container memory limit in GiB (env MEMORY_GB; default 8)")
    p.add_argument("--engines", help='e.g. "ort faster-whisper:int8" (env ENGINES; default: all)')
    p.add_argument("--model", help="tiny.en, base or small (env MODEL; default tiny.en)")
    p.add_argument("--repeats", help="timed passes over the corpus (env REPEATS; default 1)")
    p.add_argument("--warmup", help="untimed warm-up transcriptions (env WARMUP; default 1)")
    p.add_argument("--timeout", help="seconds before a run is killed (env RUN_TIMEOUT_SEC; default 3600)")
    p.add_argument("--heartbeat", help="seconds between heartbeat lines (env MODEL_PROGRESS_INTERVAL_SEC; 30)")
    p.add_argument("--results", help="results folder (env RESULTS_DIR; default results/)")
    p.add_argument("--models-dir", dest="models_dir", help="model store (env MODELS_DIR; default models/)")
    p.add_argument("--audio-dir", dest="audio_dir", help="corpus (env AUDIO_DIR; default audio/synth)")
    p.add_argument("--no-build", action="store_true", help="use the engine images as they are")
    p.add_argument("--no-report", action="store_true", help="skip scoring and the report")
    if engine_args:
        p.add_argument("engine_args", nargs="*", help="after --: extra engine flags, e.g. -- --beam-size 5")


def run(args) -> None:
    from .orchestrate import run_comparison, score_and_report
    from .plan import build_config

    config = build_config(args)
    records = run_comparison(config, build=not args.no_build)
    if not args.no_report:
        score_and_report(config)
    if records and all(r["status"] not in ("ok", "partial") for r in records):
        sys.exit(1)


def images(args) -> None:
    from .images import docker_client
    from .orchestrate import build_images
    from .plan import parse_engines

    engines = [engine for engine, _ in parse_engines(args.engines)]
    results = build_images(docker_client(), engines, Path(args.log_dir))
    if any(err for _, err in results.values()):
        sys.exit(1)


def add_subcommands(sub) -> None:
    p = sub.add_parser("run", help="the containerized comparison: every engine at every core count")
    add_run_arguments(p)
    p.set_defaults(func=run)
    img = sub.add_parser("images", help="build the base image and the engine images")
    img.add_argument("--engines", help="engines to build (default: all)")
    img.add_argument("--log-dir", default="results/logs")
    img.set_defaults(func=images)
