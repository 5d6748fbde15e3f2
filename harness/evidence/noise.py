"""This run's run-to-run noise, measured from its own rounds: what the racing's screen is sized by.

Model, on log RTF: run(cell, round) = level(cell) + shift(round, core count) + noise. The shift is what
every run of one round at one core count shares (the machine's drift; cells of one core count run back to
back); the noise is what is left, assumed alike for the cells of one core count (cells of another core
count share the CPUs with the harness differently, so each core count gets its own figure). The figure is
the residual standard deviation of that additive model, fitted by least squares; its degrees of freedom
are the runs beyond the parameters, so a cell seen once adds nothing.

Until a core count has MIN_DF degrees of freedom, PRIOR_SIGMA stands in: the per-run noise measured by
`harness calibrate` on the development host (DESIGN.md). The verdicts' intervals never use this pooled
figure: each comparison's interval is the pair's own (stats.ratio), which holds whatever the cells' noise.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

PRIOR_SIGMA = 0.04     # per-run sd of log RTF, calibrate on the 2-vCPU development host (3.5 %), rounded up
MIN_DF = 4             # residual degrees of freedom before this run's own figure replaces the prior


@dataclass(frozen=True)
class Noise:
    sigma: float           # per-run sd of log RTF
    df: int                # 0: the prior
    measured: bool


def residual_sd(rows: list[dict]) -> tuple[float, int] | None:
    """The additive model's residual sd and its degrees of freedom over rows' runs (None: no df)."""
    # run keys are "run_id:round": the runs of one round of one run share the drift
    obs = [(i, k, math.log(v)) for i, r in enumerate(rows) for k, v in r["runs"].items() if v and v > 0]
    if not obs:
        return None
    cells = sorted({o[0] for o in obs})
    rounds = sorted({o[1] for o in obs})
    col = {**{("c", c): j for j, c in enumerate(cells)}, **{("r", r): len(cells) + j for j, r in enumerate(rounds)}}
    x = np.zeros((len(obs), len(col)))
    for n, (cell, rnd, _) in enumerate(obs):
        x[n, col[("c", cell)]] = x[n, col[("r", rnd)]] = 1.0
    y = np.array([o[2] for o in obs])
    beta, _, rank, _ = np.linalg.lstsq(x, y, rcond=None)
    df = len(obs) - int(rank)
    if df < 1:
        return None
    resid = y - x @ beta
    return math.sqrt(float(resid @ resid) / df), df


def run_noise(rows: list[dict]) -> dict[int, Noise]:
    """Per core count: this run's measured noise where it has MIN_DF degrees of freedom, else the prior."""
    out = {}
    for cores in sorted({r["cores"] for r in rows}):
        fit = residual_sd([r for r in rows if r["cores"] == cores and r.get("runs")])
        out[cores] = Noise(fit[0], fit[1], True) if fit and fit[1] >= MIN_DF else Noise(PRIOR_SIGMA, 0, False)
    return out
