"""From rows to an answer: like with like, one accuracy gate, scaling, and winners only where the
intervals separate them.

- Rows are compared only within a comparison: same SUT, model, corpus, requested decoding settings and
  memory limit. Each comparison gets its own answer, which says what it compared.
- The gate has one rule per comparison, stated with the answer: with references, a row passes when its
  word accuracy is at least 99 % of the baseline engine's complete run (or, with no complete baseline,
  of the most accurate complete run); without references, when its transcripts agree with a complete
  baseline run to within 1 % WER; with neither, accuracy is not gated and the answer says so.
- A winner is named only when the paired 95 % interval of its RTF ratio to every other candidate lies
  below 1; otherwise the answer names the tie and how far apart the tied rows are.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field

from engines.registry import BASELINE_ENGINE
from engines.results import Status

from ..scoring.normalizers import GATE_NORMALIZER
from .cells import common_timings
from .stats import paired_ratio

ACCURACY_GATE = 0.99          # share of the reference point's word accuracy a row must keep
BASELINE_AGREEMENT = 0.01     # without references: WER against the baseline's transcripts


def comparison_key(row: dict) -> tuple:
    return (row["sut"], row["model"], row.get("corpus_id"), row.get("decoding_key"), row["memory_gb"])


def group_rows(rows: list[dict]) -> dict[tuple, list[dict]]:
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(comparison_key(row), []).append(row)
    return groups


def _ok(row: dict) -> bool:
    return row["status"] == Status.OK and bool(row.get("rtf"))


def apply_gate(group: list[dict]) -> str:
    """Sets each finished row's `accuracy_gate`; returns the rule used, in words."""
    finished = [r for r in group if r["status"] in (Status.OK, Status.PARTIAL)]
    for row in group:
        row["accuracy_gate"] = None
    baseline = [r for r in finished if r["engine"] == BASELINE_ENGINE and r["status"] == Status.OK]
    if any(r["wer"] is not None for r in finished):
        base_wers = [r["wer"] for r in baseline if r["wer"] is not None]
        if base_wers:
            point, source = min(base_wers), f"{BASELINE_ENGINE}'s complete run"
        else:
            best = min((r for r in finished if r["status"] == Status.OK and r["wer"] is not None),
                       key=lambda r: r["wer"], default=None)
            if best is None:
                return "accuracy is not gated: no complete run has a WER"
            point = best["wer"]
            source = f"the most accurate complete run ({best['cell']}; no complete {BASELINE_ENGINE} run)"
        for row in finished:
            if row["wer"] is None:
                continue
            if row in baseline:
                row["accuracy_gate"] = "baseline"
            else:
                row["accuracy_gate"] = "pass" if 1 - row["wer"] >= ACCURACY_GATE * (1 - point) else "FAIL"
        return (f"word accuracy against the references ({GATE_NORMALIZER} normaliser) at least "
                f"{100 * ACCURACY_GATE:.0f} % of {source}, WER {100 * point:.2f} %")
    if baseline:
        for row in finished:
            if row in baseline:
                row["accuracy_gate"] = "baseline"
            elif row["wer_vs_baseline"] is not None:
                row["accuracy_gate"] = "pass" if row["wer_vs_baseline"] <= BASELINE_AGREEMENT else "FAIL"
        return (f"no references: transcripts within {100 * BASELINE_AGREEMENT:.0f} % WER of "
                f"{BASELINE_ENGINE}'s complete run")
    return f"accuracy is not gated: no references and no complete {BASELINE_ENGINE} run"


def add_scaling(group: list[dict]) -> None:
    """Speed-up and efficiency from RTF against the same variant's fewest-cores ok run, named in `scaling_base`."""
    by_cell: dict[str, list[dict]] = {}
    for row in group:
        row["speedup"] = row["efficiency"] = None
        row["scaling_base"] = ""
        row["audio_h_per_core_h"] = row["rtfx"] / row["cores"] if _ok(row) and row["rtfx"] and row["cores"] else None
        if _ok(row) and row["cores"]:
            by_cell.setdefault(row["cell"], []).append(row)
    for cells in by_cell.values():
        base = min(cells, key=lambda r: r["cores"])
        for row in cells:
            row["speedup"] = base["rtf"] / row["rtf"]
            row["efficiency"] = row["speedup"] / (row["cores"] / base["cores"])
            row["scaling_base"] = f"{base['cores']}c"


def add_decoding_diff(group: list[dict]) -> dict:
    """The comparison's most common applied settings; each row lists where its applied settings differ."""
    applied = [r["decoding_applied"] for r in group if r.get("decoding_applied")]
    keys = sorted({k for a in applied for k in a})
    common = {k: Counter(json.dumps(a.get(k)) for a in applied).most_common(1)[0][0] for k in keys}
    for row in group:
        a = row.get("decoding_applied") or {}
        row["decoding_diff"] = "; ".join(f"{k}={a.get(k)}" for k in sorted(a) if json.dumps(a.get(k)) != common.get(k))
    return {k: json.loads(v) for k, v in common.items()}


def add_derived(rows: list[dict]) -> dict[tuple, dict]:
    """Gate, scaling and decoding differences per comparison; returns comparison -> {rule, common decoding}."""
    out = {}
    for key, group in group_rows(rows).items():
        rule = apply_gate(group)
        add_scaling(group)
        out[key] = {"gate_rule": rule, "common_decoding": add_decoding_diff(group)}
    return out


@dataclass
class Verdict:
    """The best row by a metric and how sure that is."""
    leader: dict
    tied: list[tuple[dict, tuple[float, float, float] | None]] = field(default_factory=list)  # (row, ratio)
    runner_up: tuple[dict, tuple[float, float, float] | None] | None = None

    @property
    def separated(self) -> bool:
        return not self.tied


def decide(candidates: list[dict], records: dict, cost=lambda r: r["rtf"]) -> Verdict | None:
    """The candidate with the lowest cost, tied with every other whose paired ratio interval includes 1."""
    if not candidates:
        return None
    ordered = sorted(candidates, key=cost)
    leader = ordered[0]
    verdict = Verdict(leader)
    for other in ordered[1:]:
        ratio = paired(leader, other, records)
        if ratio is not None:
            factor = cost(leader) / leader["rtf"] / (cost(other) / other["rtf"])
            ratio = (ratio[0] * factor, ratio[1] * factor, ratio[2] * factor)
        if verdict.runner_up is None:
            verdict.runner_up = (other, ratio)
        if ratio is None or ratio[2] >= 1.0:
            verdict.tied.append((other, ratio))
    return verdict


def paired(a: dict, b: dict, records: dict) -> tuple[float, float, float] | None:
    """RTF(a) / RTF(b), paired over the files both transcribed in every ok round."""
    ra, rb = records.get(_id(a)), records.get(_id(b))
    if not ra or not rb:
        return None
    times_a, times_b, audio = common_timings(ra, rb)
    if times_a.size == 0 or times_b.size == 0:
        return None
    return paired_ratio(times_a, times_b, audio)


def _id(row: dict) -> tuple:
    return (row["sut"], row["shape"], row["cell"])


def records_by_id(records: list[dict]) -> dict[tuple, dict]:
    return {(r["sut"], r["shape"], r["cell"]): r for r in records}


def gated(group: list[dict]) -> list[dict]:
    ok = [r for r in group if _ok(r)]
    if any(r.get("accuracy_gate") for r in ok):
        return [r for r in ok if r.get("accuracy_gate") in ("pass", "baseline")]
    return ok


def tied_with_leader(cell_records: dict) -> list:
    """For the run loop: cells (keys of cell_records) that are tied with the fastest at their core count."""
    by_cores: dict[int, list] = {}
    rows = {}
    from .rows import row_from_cell

    for cell, record in cell_records.items():
        row = row_from_cell(record)
        if _ok(row):
            rows[cell] = row
            by_cores.setdefault(row["cores"], []).append(cell)
    records = records_by_id(list(cell_records.values()))
    out = []
    for cells in by_cores.values():
        verdict = decide([rows[c] for c in cells], records)
        if verdict and verdict.tied:
            tied_rows = [verdict.leader] + [r for r, _ in verdict.tied]
            out += [c for c in cells if rows[c] in tied_rows]
    return out
