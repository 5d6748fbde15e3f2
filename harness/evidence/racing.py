"""Racing: which cells get another round, in a time budget, without spending the answer's error rate.

Every cell runs in round 1. After each round:
- a cell that failed, or fails the accuracy gate, gets no more rounds;
- a cell that is, for every question its comparison asks, out of contention (the screen, verdicts.py)
  or already beaten at the interim level (below) gets no more;
- the rest (the contenders) run again, back to back, in a fixed order reversed every other round (ABBA),
  so that each pair shares the machine's drift and a linear drift cancels in pairs of rounds.
Rounds stop when no question has two contenders left, at MAX_ROUNDS, or when the next round would not
fit in the time budget.

Looking at the intervals after every round and stopping on them would be optional stopping: the error
rate grows with the looks. The interim look is therefore a Haybittle-Peto boundary: a candidate leaves
the race only when its interval against the leader at INTERIM_ALPHA (about three standard errors)
already lies beyond the minimum effect; the answer's own 95 % intervals are taken once, at the end.
The boundary is looked at afresh every round (a candidate comes back if the leader changes).
evidence/simulate.py and tests/test_statistics.py show the false-winner rate stays below 5 % with the
screen and the boundary in place, and how often a true 10 % difference is named in the default budget.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

from .gate import gated, group_rows
from .verdicts import contests, decide

INTERIM_ALPHA = 0.003    # two-sided: a z of 3, Haybittle and Peto's interim boundary
# Per run, outside the engine's wall time (the quiet check, container start and removal): between one run's
# end and the next one's start, median 1.6 s over the 28 gaps of a fresh-clone `make compare`
# (examples/epyc-2vcpu/compare-run1), rounded up.
RUN_OVERHEAD_S = 2.0


@dataclass
class Plan:
    cells: list[dict] = field(default_factory=list)    # rows to run in the next round, in order
    reason: str = ""


def contenders(rows: list[dict]) -> list[dict]:
    """Rows still in contention for some question with at least one other row."""
    keep: dict[int, dict] = {}
    for group in group_rows(rows).values():
        for contest in contests(gated(group)):
            verdict = decide(contest, alpha=INTERIM_ALPHA)
            if verdict is None:
                continue
            alive = verdict.in_contention()
            if len(alive) >= 2:
                keep.update({id(r): r for r in alive})
    return list(keep.values())


def next_round(rows: list[dict], round_index: int, elapsed_s: float, budget_s: float | None, max_rounds: int,
               seed: int) -> Plan:
    """What round `round_index` runs (empty cells: stop, with the reason)."""
    if round_index > max_rounds:
        return Plan(reason=f"MAX_ROUNDS ({max_rounds}) reached")
    alive = contenders(rows)
    if not alive:
        return Plan(reason="no question has two contenders left")
    estimate = sum((r.get("last_wall_s") or r.get("host_wall_s") or 0.0) + RUN_OVERHEAD_S for r in alive)
    if budget_s is not None and elapsed_s + estimate > budget_s:
        return Plan(reason=f"the time budget: round {round_index} would take about {estimate / 60:.1f} min more")
    order = sorted(alive, key=lambda r: (r["cores"], r["cell"], r.get("replica") or 0))
    random.Random(f"{seed}:contenders").shuffle(order)
    if round_index % 2 == 0:
        order.reverse()
    return Plan(order, f"{len(order)} contender(s)")
