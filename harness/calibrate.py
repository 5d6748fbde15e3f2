"""`python -m harness calibrate`: an A/A run. One variant (default ort int8) runs as two cells, through the
whole pipeline (containers, racing rounds, scoring, verdicts), in results/<SUT>/calibration/. Printed:
this machine's run-to-run noise, the false-difference rate the answer has at these settings (simulated
through the project's own racing and verdict code at the measured noise), whether the identical cells
were called a tie, and the smallest difference a two-contender race resolves within a given budget.
"""
from __future__ import annotations

import dataclasses
import json
import math
import sys

import numpy as np

from .files import write_json
from .run.config import Cell, Config, plan_cells

AREA = "calibration"
DEFAULT_VARIANT = ("ort", "int8")
DEFAULT_BUDGET_MIN = 10
SIM_TRIALS = 2000


def aa_cells(config: Config) -> list[Cell]:
    cells = plan_cells(config)
    return cells + [dataclasses.replace(c, replica=1) for c in cells]


def noise(rows: list[dict]) -> dict:
    """Per-run noise (sd of log RTF) from the A/A pairs: the paired log differences of the two copies in the
    same rounds have variance 2 sigma^2; the copies' own spread is reported too."""
    diffs, spreads = [], []
    by_cores: dict[int, list[dict]] = {}
    for row in rows:
        by_cores.setdefault(row["cores"], []).append(row)
        if len(row["runs"]) >= 2:
            spreads.append(float(np.std(np.log(list(row["runs"].values())), ddof=1)))
    for pair in by_cores.values():
        if len(pair) == 2:
            a, b = pair
            common = [k for k in a["runs"] if k in b["runs"]]
            diffs += [math.log(a["runs"][k]) - math.log(b["runs"][k]) for k in common]
    sigma_pair = float(np.std(diffs, ddof=1)) / math.sqrt(2) if len(diffs) >= 2 else None
    sigma_cell = float(np.sqrt(np.mean(np.square(spreads)))) if spreads else None
    return {"sigma_per_run": sigma_pair, "sigma_within_cell": sigma_cell, "n_pairs": len(diffs)}


def calibrate(config: Config, build: bool = True, budget_min: float = DEFAULT_BUDGET_MIN) -> dict:
    from .evidence.gate import add_derived
    from .evidence.records import collect_cells
    from .evidence.rows import row_from_cell
    from .evidence.simulate import SimCell, rates
    from .evidence.stats import resolvable_ratio
    from .evidence.verdicts import contests, decide
    from .report.answer import question
    from .report.verdict_text import verdict_lines
    from .run.loop import run_comparison
    from .scoring.score import score_results

    config = dataclasses.replace(config, area=AREA)
    run_comparison(config, build=build, cells=aa_cells(config))
    score_results(config.sut_dir, config.audio_dir, quiet=True)
    rows = [row_from_cell(r) for r in collect_cells(config.sut_dir.parent) if r["sut"] == AREA]
    add_derived(rows)
    measured = noise(rows)
    sigma = measured["sigma_per_run"] or measured["sigma_within_cell"] or 0.04
    lines = [f"calibrate: {len(rows)} cells, run-to-run noise sigma = {100 * sigma:.1f} % per run "
             f"(from {measured['n_pairs']} paired rounds of identical cells)"]
    verdicts = []
    for contest in contests([r for r in rows if r["status"] == "ok" and r["runs"]]):
        verdict = decide(contest)
        if verdict is None or not contest.key.startswith("fastest"):
            continue
        q = question(verdict)
        verdicts.append(q)
        said = "a tie (right: the cells are identical)" if q["status"] == "tie" else \
            f"{q['status']} (WRONG: identical cells)"
        lines.append(f"  identical cells at {contest.key.split('@')[1]}: {said}")
        lines += [f"    {ln}" for ln in verdict_lines(q)]
    run_s = float(np.median([r["last_wall_s"] for r in rows if r.get("last_wall_s")] or [30.0]))
    audio_s = float(np.median([r["total_audio_s"] for r in rows if r.get("total_audio_s")] or [300.0]))
    rtf = float(np.median([r["rtf"] for r in rows if r.get("rtf")] or [0.05]))
    budget_s = config.time_budget_s
    sim = rates([SimCell("a", 1, rtf), SimCell("b", 1, rtf)], "Fastest at 1 core", None, sigma, audio_s, budget_s,
                config.max_rounds, SIM_TRIALS)
    lines.append(f"  false-difference rate at these settings (TIME_BUDGET {budget_s / 60 if budget_s else 0:.0f} "
                 f"min, MAX_ROUNDS {config.max_rounds}), simulated at sigma {100 * sigma:.1f} %: "
                 f"{100 * sim['winner_named']:.1f} % of {SIM_TRIALS} identical pairs named a winner")
    per_round = 2 * run_s
    n = max(2, min(config.max_rounds, int(budget_min * 60 // per_round)))
    smallest = resolvable_ratio(sigma * math.sqrt(2), n)
    lines.append(f"  within {budget_min:g} min two contenders of this kind ({run_s:.0f} s a run) get about {n} "
                 f"rounds: the smallest difference resolved 80 % of the time is "
                 f"{100 * (smallest - 1):.1f} %" if smallest else "  too few rounds in that budget to resolve anything")
    result = {"noise": measured, "sigma_used": sigma, "verdicts": verdicts, "simulated_false_difference": sim,
              "smallest_resolvable": smallest, "rounds_in_budget": n, "budget_min": budget_min,
              "run_s": run_s}
    write_json(config.sut_dir / "calibration.json", result)
    for line in lines:
        print(line)
    print(f"calibrate: written {config.sut_dir / 'calibration.json'}", file=sys.stderr)
    return json.loads(json.dumps(result))
