"""`python -m harness discover`: make every build of the model, run each as an `ort` cell in the same
pinned containers and rounds as a comparison, score it, and rank the builds.

The cells live in `results/<SUT>/discovery/` (an area of the SUT, outside the main report's tables);
the ranking goes to `results/<SUT>/discovery.{md,csv}` and a plot. Three reference cells run with the
builds, in the same rounds, so every ratio comes from one run: the store's `ort` fp32 and int8 and
faster-whisper int8. The baseline engine's transcripts are reused when a complete run of the same model,
corpus and requested decoding exists in the SUT (from `make compare` or an earlier discovery); only
when none does is it run once, at the fewest cores.
"""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from engines.registry import BASELINE_ENGINE, BUILD_FILE, BUILDS_DIR, SPECS

from ..errors import UserError
from ..files import read_json, write_json
from ..layout import PLAN_FILE, RUN_FILE, SUMMARY_FILE, round_dirs
from ..report.discovery import AREA, BUILDS_FILE
from ..run.config import Config, parse_engines

ENGINE = "ort"
REFERENCES = "ort:fp32 ort:int8 faster-whisper:int8"
BASELINE_PLAN = "baseline-plan.json"  # discovery/: the plan of the baseline's run, when the SUT has its own


def build_names(model_dir: Path) -> list[str]:
    """Every build folder under the model's variants/ (generated or the user's), sorted."""
    root = model_dir / BUILDS_DIR
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) \
        if root.is_dir() else []


def requested_decoding(engine_args: list[str]) -> dict:
    """The decoding settings a run with these engine flags requests, as the runner records them."""
    from engines.runner import decoding_settings, parse_args

    args = parse_args([ENGINE, "--model-dir", ".", "--audio-dir", ".", "--out", ".", "--threads", "1",
                       *engine_args])
    return dataclasses.asdict(decoding_settings(args))


def reusable_baseline(config: Config, corpus: str, decoding: dict, baseline: str = BASELINE_ENGINE) -> Path | None:
    """A complete baseline round of this model, corpus and decoding in the SUT or its discovery area."""
    cell = f"{baseline}-{config.model}-{SPECS[baseline].default_variant}"
    sut = config.results_dir / config.sut
    for shape in sorted(sut.glob("container_*")) + sorted((sut / AREA).glob("container_*")):
        for round_dir in round_dirs(shape / cell):
            run, summary = read_json(round_dir / RUN_FILE) or {}, read_json(round_dir / SUMMARY_FILE) or {}
            if (run.get("status") == "ok" and (run.get("host") or {}).get("corpus_id") == corpus
                    and summary.get("decoding") == decoding):
                return round_dir
    return None


def discover(config: Config, builds: list[str] | None, variants_dir: Path | None, force: bool,
             build_images: bool = True, references: str = REFERENCES, baseline: str = BASELINE_ENGINE) -> Path:
    """Returns the discovery.md written. The baseline, when it must run, runs as an ordinary cell of the
    SUT (where `make compare` puts it), so the discovery area's own re-runs never move it aside."""
    from ..report import write_report
    from ..run.loop import corpus_id, run_comparison, validate_inputs
    from ..scoring.score import score_results
    from .builds import RECIPE_NAMES, generate
    from .user_builds import import_user_builds

    unknown = sorted(set(builds or []) - set(RECIPE_NAMES))
    if unknown:
        raise UserError(f"--builds: unknown build {', '.join(unknown)}; choose from {', '.join(RECIPE_NAMES)}")
    model_dir = config.model_dir
    if not (model_dir / "onnx" / "config.json").is_file():
        raise UserError(f"model {config.model}: {model_dir / 'onnx'} is missing: run "
                        f"`python -m harness models prepare --model {config.model}`")
    print(f"discover: making builds of {config.model} in {model_dir / BUILDS_DIR}", file=sys.stderr)
    made = generate(model_dir, builds, force=force, log=lambda m: print(f"  {m}", file=sys.stderr))
    if variants_dir is not None:
        if not variants_dir.is_dir():
            raise UserError(f"--variants {variants_dir}: no such folder")
        made.update(import_user_builds(variants_dir, model_dir, log=lambda m: print(f"  {m}", file=sys.stderr)))
    names = [n for n in build_names(model_dir) if builds is None or n in builds or n not in RECIPE_NAMES]

    if baseline not in SPECS:
        raise UserError(f"--baseline {baseline!r}: choose one of {', '.join(SPECS)}")
    extra = parse_engines(references) if references.strip() else []  # "" is none here, not every engine
    config = dataclasses.replace(config, area=AREA, engines=[(ENGINE, n) for n in names] + extra)
    files = validate_inputs(config)
    corpus = corpus_id(config.audio_dir, files)
    reused = reusable_baseline(config, corpus, requested_decoding(config.engine_args), baseline)
    if reused is None:
        print(f"discover: no complete {baseline} run of {config.model} on this corpus and decoding: "
              f"running it once at {min(config.cores_list)} core(s)", file=sys.stderr)
        # Its cell lands in the SUT's own folder, to be reused; the SUT's plan.json still describes the SUT's
        # last comparison, so this run's plan is kept beside the discovery's.
        once = dataclasses.replace(config, area="", engines=[(baseline, SPECS[baseline].default_variant)],
                                   cores_list=[min(config.cores_list)], rounds=1, max_rounds=1)
        plan_file = None
        if (once.sut_dir / PLAN_FILE).exists():
            config.sut_dir.mkdir(parents=True, exist_ok=True)
            plan_file = config.sut_dir / BASELINE_PLAN
        run_comparison(once, build=build_images, plan_file=plan_file)
    else:
        print(f"discover: reusing {baseline}'s transcripts from {reused}", file=sys.stderr)
    write_json(config.sut_dir / BUILDS_FILE, build_facts(model_dir, names, made))
    run_comparison(config, build=build_images)
    score_results(config.results_dir / config.sut, config.audio_dir, baseline=baseline, quiet=True)
    report = write_report(config.results_dir)   # the ranking is one of the report's exporters
    return report.discovery[config.sut]["md"]


def build_facts(model_dir: Path, names: list[str], made: dict[str, dict]) -> dict[str, dict]:
    """What each build is (its variant.json) or why it was not made: the results' own copy, so that the
    report ranks from results/ alone."""
    facts = {n: info for n, info in made.items() if info.get("skipped")}
    for name in names:
        facts[name] = read_json(model_dir / BUILDS_DIR / name / BUILD_FILE) or {}
    return facts

