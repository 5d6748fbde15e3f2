"""Verdicts: for each question an answer asks, the leader, and how each other candidate stands.

The questions (contests) of one comparison: the fastest at each core count (RTF), and the cheapest per
core-hour (RTF x cores, across core counts). A throughput comparison (batch > 1) asks the same of its
own rows.

A candidate stands against the leader in one of three ways:
- `out`: out of contention, by the screen: even its fastest run took at least `screen_ratio` times the
  leader's slowest run. The ratio is sized by the run's noise (noise.py: this run's own per-run sd at
  each core count once it has the degrees of freedom, else the calibrated prior of 4 %): SCREEN_Z
  standard deviations of a one-run ratio, 1.157 at 4 %. Identical cells land beyond it in 0.5 % of
  one-run looks, and the screen corrects itself: it is taken afresh after every round, between the
  extremes of all runs, so a cell put out by one unlucky run comes back when the leader's runs spread.
  This is what stops a cell getting more rounds.
- `beaten`: the ratio's 95 % interval (stats.ratio: paired over common rounds) lies below 1 - MIN_EFFECT:
  the leader is faster by at least that much, with 95 % confidence. The minimum effect keeps the rate of
  false winners between identical cells below the nominal 5 % (the leader is picked after the fact, so
  a plain "below 1" would spend exactly 5 %), at little cost in power.
- `tied`: neither.
A winner is named only when every other candidate is out or beaten; one candidate is not a winner.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from .noise import PRIOR_SIGMA, Noise, run_noise
from .stats import ALPHA, Ratio, geometric_mean, ratio

SCREEN_Z = 2.58            # one-sided 0.5 % of a one-run ratio between identical cells
MIN_EFFECT = 0.01


@dataclass
class Standing:
    row: dict
    relation: str                  # out | beaten | tied
    ratio: Ratio | None            # leader / this row, cost-scaled


@dataclass
class Contest:
    question: str                  # "Fastest at 2 cores", "Cheapest per core-hour"
    key: str                       # machine-readable: fastest@2c, cheapest
    candidates: list[dict]
    per_core: bool = False         # cost is RTF x cores
    noise: dict[int, Noise] = field(default_factory=dict)   # per core count (noise.run_noise)

    def sigma(self, row: dict) -> float:
        found = self.noise.get(row["cores"])
        return found.sigma if found else PRIOR_SIGMA

    def screen_ratio(self, a: dict, b: dict) -> float:
        """How much slower b's fastest run must be than a's slowest for b to be out."""
        return math.exp(SCREEN_Z * math.hypot(self.sigma(a), self.sigma(b)))

    def factor(self, row: dict) -> float:
        return float(row["cores"]) if self.per_core else 1.0


@dataclass
class Verdict:
    contest: Contest
    leader: dict
    others: list[Standing] = field(default_factory=list)

    @property
    def winner(self) -> dict | None:
        if not self.others or any(s.relation == "tied" for s in self.others):
            return None
        return self.leader

    @property
    def tied(self) -> list[Standing]:
        return [s for s in self.others if s.relation == "tied"]

    @property
    def open(self) -> bool:
        """Another round could still change the answer: someone is neither out nor beaten."""
        return bool(self.tied)

    def in_contention(self) -> list[dict]:
        """The leader and whoever is neither out nor beaten."""
        return [self.leader] + [s.row for s in self.tied]


def cost(row: dict, factor: float) -> float:
    point = geometric_mean(row["runs"].values())
    return (point if point else float("inf")) * factor


def screened_out(contest: Contest, leader: dict, other: dict) -> bool:
    if not leader["runs"] or not other["runs"]:
        return False
    return (min(other["runs"].values()) * contest.factor(other)
            >= contest.screen_ratio(leader, other) * max(leader["runs"].values()) * contest.factor(leader))


def decide(contest: Contest, alpha: float = ALPHA) -> Verdict | None:
    """The contest's leader (lowest geometric-mean cost) and every other candidate's standing, with
    intervals at `alpha` (the answer's 95 %, or the racing's interim boundary)."""
    rows = [r for r in contest.candidates if r.get("runs")]
    if not rows:
        return None
    costs = {id(r): cost(r, contest.factor(r)) for r in rows}
    ordered = sorted(rows, key=lambda r: (costs[id(r)], r["cell"], r["cores"]))
    leader = ordered[0]
    verdict = Verdict(contest, leader)
    f_lead = contest.factor(leader)
    for other in ordered[1:]:
        f_other = contest.factor(other)
        r = ratio(leader["runs"], other["runs"], alpha)
        r = r.scaled(f_lead / f_other) if r else None
        if screened_out(contest, leader, other):
            relation = "out"
        elif r is not None and r.high is not None and r.high < 1 - MIN_EFFECT:
            relation = "beaten"
        else:
            relation = "tied"
        verdict.others.append(Standing(other, relation, r))
    return verdict


def plural(n: int) -> str:
    return f"{n} core{'s' if n != 1 else ''}"


def contests(candidates: list[dict]) -> list[Contest]:
    """The questions one comparison's candidates answer (candidates: rows within the gate)."""
    if not candidates:
        return []
    noise = run_noise(candidates)
    batch = candidates[0].get("batch") or 1
    what = "Fastest" if batch == 1 else f"Most throughput at batch {batch}"
    out = [Contest(f"{what} at {plural(c)}", f"fastest@{c}c" if batch == 1 else f"throughput-b{batch}@{c}c",
                   [r for r in candidates if r["cores"] == c], noise=noise)
           for c in sorted({r["cores"] for r in candidates})]
    out.append(Contest("Cheapest per core-hour", "cheapest" if batch == 1 else f"cheapest-b{batch}",
                       list(candidates), per_core=True, noise=noise))
    return out
