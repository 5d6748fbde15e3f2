"""Simulated runs through the project's own racing and verdict code: what error rate and power the answer
has on a machine with a given run-to-run noise. Used by `harness calibrate` and by the tests.

A simulated run's RTF is the cell's true RTF times exp(N(0, sigma)) (independent between runs: the worst
case for pairing) times a drift shared by every run of the round (drift_sigma, 0 by default); its wall
time is RTF x corpus seconds plus the per-run overhead, so the time budget acts as in a real run.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .gate import gated
from .racing import RUN_OVERHEAD_S, next_round
from .verdicts import Verdict, contests, decide

SIM_LOAD_S = 3.0      # model load and warm-up of one run, outside the timed transcription


@dataclass(frozen=True)
class SimCell:
    cell: str
    cores: int
    rtf: float
    gate: str = "pass"
    load_s: float = SIM_LOAD_S      # a run's time outside the timed transcription (load, warm-up, start)


def _row(c: SimCell) -> dict:
    return {"sut": "sim", "fingerprint": "sim", "model": "m", "corpus_id": "c", "decoding_key": "{}",
            "memory_gb": 8, "cell": c.cell, "shape": f"{c.cores}c", "cores": c.cores, "batch": 1, "engine": c.cell,
            "variant": "", "replica": 0, "status": "ok", "accuracy_gate": c.gate, "runs": {}, "rtf": c.rtf,
            "last_wall_s": None}


def simulate_run(cells: list[SimCell], sigma: float, audio_s: float, budget_s: float | None, max_rounds: int,
                 rng: np.random.Generator, drift_sigma: float = 0.0) -> tuple[list[Verdict], int, float]:
    """One whole run: the verdicts, rounds run and seconds spent."""
    rows = [_row(c) for c in cells]
    truth = {r["cell"] + str(r["cores"]): c for r, c in zip(rows, cells)}
    elapsed, round_index, todo = 0.0, 1, rows
    while todo:
        drift = rng.normal(0.0, drift_sigma) if drift_sigma else 0.0
        for row in todo:
            cell = truth[row["cell"] + str(row["cores"])]
            rtf = cell.rtf * math.exp(rng.normal(0.0, sigma) + drift)
            row["runs"][f"sim:{round_index}"] = rtf
            row["last_wall_s"] = rtf * audio_s + cell.load_s
            elapsed += row["last_wall_s"] + RUN_OVERHEAD_S
        round_index += 1
        todo = next_round(rows, round_index, elapsed, budget_s, max_rounds, seed=0).cells
    for row in rows:
        row["rtf"] = math.exp(float(np.mean(np.log(list(row["runs"].values())))))
    verdicts = [v for c in contests(gated(rows)) if (v := decide(c)) is not None]
    return verdicts, round_index - 1, elapsed


def rates(cells: list[SimCell], question: str, expected_winner: str | None, sigma: float, audio_s: float,
          budget_s: float | None, max_rounds: int, trials: int, seed: int = 0) -> dict:
    """Over `trials` simulated runs: how often `question` names a winner, how often the expected one (None:
    identical leaders, any winner is false), and the rounds and minutes spent."""
    rng = np.random.default_rng(seed)
    named = right = 0
    rounds, minutes = [], []
    for _ in range(trials):
        verdicts, n_rounds, elapsed = simulate_run(cells, sigma, audio_s, budget_s, max_rounds, rng)
        verdict = next(v for v in verdicts if v.contest.question == question)
        if verdict.winner is not None:
            named += 1
            right += int(verdict.winner["cell"] == expected_winner)
        rounds.append(n_rounds)
        minutes.append(elapsed / 60)
    return {"trials": trials, "winner_named": named / trials, "expected_winner": right / trials,
            "rounds_median": float(np.median(rounds)), "minutes_median": float(np.median(minutes)),
            "minutes_max": float(np.max(minutes))}
