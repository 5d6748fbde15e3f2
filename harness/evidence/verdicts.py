"""Verdicts: for each question an answer asks, the leader, and how each other candidate stands.

The questions (contests) of one comparison: the fastest at each core count (RTF), and the cheapest per
core-hour (RTF x cores, across core counts). A throughput comparison (batch > 1) asks the same of its
own rows.

A candidate stands against the leader in one of three ways:
- `out`: out of contention, by the screen: even its fastest run took at least SCREEN_RATIO times the
  leader's slowest run (at this machine's run-to-run noise, sigma ~ 4 % per run, 1.25 is more than four
  standard deviations of a one-run ratio). This is what stops a cell getting more rounds.
- `beaten`: the ratio's 95 % interval (stats.ratio: paired over common rounds) lies below 1 - MIN_EFFECT:
  the leader is faster by at least that much, with 95 % confidence. The minimum effect keeps the rate of
  false winners between identical cells below the nominal 5 % (the leader is picked after the fact, so
  a plain "below 1" would spend exactly 5 %), at little cost in power.
- `tied`: neither.
A winner is named only when every other candidate is out or beaten; one candidate is not a winner.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .stats import ALPHA, Ratio, geometric_mean, ratio

SCREEN_RATIO = 1.25
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
        return [self.leader] + [s.row for s in self.others if s.relation != "out"]


def cost(row: dict, factor: float) -> float:
    point = geometric_mean(row["runs"].values())
    return (point if point else float("inf")) * factor


def screened_out(leader: dict, other: dict, f_leader: float, f_other: float) -> bool:
    if not leader["runs"] or not other["runs"]:
        return False
    return min(other["runs"].values()) * f_other >= SCREEN_RATIO * max(leader["runs"].values()) * f_leader


def decide(contest: Contest, alpha: float = ALPHA, intervals: bool = True) -> Verdict | None:
    """The contest's leader (lowest geometric-mean cost) and every other candidate's standing. Without
    intervals only the screen is applied (what the racing schedule needs)."""
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
        r = ratio(leader["runs"], other["runs"], alpha) if intervals else None
        r = r.scaled(f_lead / f_other) if r else None
        if screened_out(leader, other, f_lead, f_other):
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
    batch = candidates[0].get("batch") or 1
    what = "Fastest" if batch == 1 else f"Most throughput at batch {batch}"
    out = [Contest(f"{what} at {plural(c)}", f"fastest@{c}c" if batch == 1 else f"throughput-b{batch}@{c}c",
                   [r for r in candidates if r["cores"] == c])
           for c in sorted({r["cores"] for r in candidates})]
    out.append(Contest("Cheapest per core-hour", "cheapest" if batch == 1 else f"cheapest-b{batch}",
                       list(candidates), per_core=True))
    return out
