"""`python -m harness compare OLD NEW`: how each cell changed between two results (an engine upgrade, a
new machine), on the same statistics as the answer, for people and for CI.

- Cells pair by container shape and engine-model-variant, and only when SUT, model, corpus and requested
  decoding agree; a pair that differs is "not comparable" and says why.
- Speed: the ratio NEW/OLD of the cells' RTF (geometric means of their runs) with Welch's t interval on
  log RTF (two runs never share a round, so nothing pairs). A cell is "slower" or "faster" only when the
  one-sided test that the change exceeds the minimum effect (default 3 %) rejects, with Holm's correction
  across every test of the comparison: the family-wise rate of false verdicts stays at 5 %.
- A new failure (oom, timeout, error) is a regression; so is an accuracy drop past the gate's rule (word
  accuracy below 99 % of OLD's).
- Exit status: 1 when a regression of a kind named by --fail-on is found (default: any), else 0.
"""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np
from tabulate import tabulate

from engines.results import Status

from ..errors import UserError
from ..evidence.gate import ACCURACY_GATE
from ..evidence.records import collect_cells
from ..evidence.rows import row_from_cell
from ..evidence.stats import ALPHA, holm, ratio, welch_p_beyond
from ..files import write_atomic
from ..layout import DEFAULT_RESULTS

DEFAULT_MIN_EFFECT = 0.03
FAIL_KINDS = ("slower", "failure", "accuracy")
FIELDS = ["shape", "cell", "old_rtf", "new_rtf", "ratio", "ratio_low", "ratio_high", "verdict", "regression",
          "old_wer", "new_wer", "wer_delta_pct", "peak_rss_delta_mib", "old_rounds", "new_rounds", "why"]


def _resolve(arg: str) -> tuple[Path, str | None]:
    """A results folder, a SUT folder, or a SUT name under results/ -> (results root, SUT or None)."""
    path = Path(arg)
    if not path.exists() and (DEFAULT_RESULTS / arg).is_dir():
        path = DEFAULT_RESULTS / arg
    if not path.is_dir():
        raise UserError(f"compare: {arg} is neither a results folder nor a SUT under {DEFAULT_RESULTS}")
    if any(path.glob("container_*")):
        return path.parent, path.name
    return path, None


def _rows(arg: str) -> dict[tuple[str, str], dict]:
    root, sut = _resolve(arg)
    records = [r for r in collect_cells(root) if sut is None or r["sut"] == sut]
    if not records:
        raise UserError(f"compare: no results under {arg}")
    suts = {r["sut"] for r in records}
    if len(suts) > 1:
        raise UserError(f"compare: {arg} holds several SUTs ({', '.join(sorted(suts))}): name one SUT folder")
    return {(r["shape"], r["cell"]): row_from_cell(r) for r in records}


def _mismatch(a: dict, b: dict) -> str:
    for key, what in (("model", "model"), ("corpus_id", "corpus"), ("decoding_key", "requested decoding")):
        if a.get(key) not in (None, "", "{}") and b.get(key) not in (None, "", "{}") and a[key] != b[key]:
            return f"{what} differs"
    return ""


def _failed(row: dict) -> bool:
    return row["status"] not in (Status.OK, Status.PARTIAL)


def speed_verdicts(pairs: list[tuple[dict, dict]], min_effect: float = DEFAULT_MIN_EFFECT) -> list[str | None]:
    """For each (old runs, new runs): "slower", "faster" or None (no change beyond min_effect), with Holm's
    correction across all of them. Runs map a run key to its RTF; a side with one run gets None."""
    tests = []
    for i, (old, new) in enumerate(pairs):
        if min(len(old), len(new)) < 2:
            continue
        x, y = np.log(list(new.values())), np.log(list(old.values()))
        p_slower, p_faster = welch_p_beyond(x, y, math.log1p(min_effect))
        tests += [(i, "slower", p_slower), (i, "faster", p_faster)]
    out: list[str | None] = [None] * len(pairs)
    for (i, direction, _), hit in zip(tests, holm([p for _, _, p in tests], ALPHA)):
        if hit:
            out[i] = direction
    return out


def compare(old: str, new: str, min_effect: float = DEFAULT_MIN_EFFECT) -> list[dict]:
    a, b = _rows(old), _rows(new)
    out, timed = [], []   # timed: (index into out, old runs, new runs)
    for key in sorted(set(a) & set(b)):
        ra, rb = a[key], b[key]
        entry = {"shape": key[0], "cell": key[1], "old_rtf": ra["rtf"], "new_rtf": rb["rtf"], "ratio": None,
                 "ratio_low": None, "ratio_high": None, "verdict": "", "regression": "", "why": "",
                 "old_wer": ra["wer"], "new_wer": rb["wer"],
                 "wer_delta_pct": 100 * (rb["wer"] - ra["wer"]) if None not in (ra["wer"], rb["wer"]) else None,
                 "peak_rss_delta_mib": (rb["peak_rss_mib"] - ra["peak_rss_mib"])
                 if None not in (ra["peak_rss_mib"], rb["peak_rss_mib"]) else None,
                 "old_rounds": ra["n_rounds"], "new_rounds": rb["n_rounds"]}
        out.append(entry)
        why = _mismatch(ra, rb)
        if why:
            entry.update(verdict="not comparable", why=why)
            continue
        if _failed(rb) and not _failed(ra):
            entry.update(verdict="new failure", regression="failure", why=f"{rb['status']}: {rb['error'][:120]}")
            continue
        if _failed(ra) or _failed(rb) or not ra["runs"] or not rb["runs"]:
            entry.update(verdict="not comparable", why=f"old {ra['status']}, new {rb['status']}")
            continue
        r = ratio(rb["runs"], ra["runs"])
        entry.update(ratio=r.point, ratio_low=r.low, ratio_high=r.high)
        if min(len(ra["runs"]), len(rb["runs"])) < 2:
            entry.update(verdict="no interval", why="one run on a side: no run-to-run noise to judge by")
        else:
            timed.append((len(out) - 1, ra["runs"], rb["runs"]))
        if None not in (ra["wer"], rb["wer"]) and 1 - rb["wer"] < ACCURACY_GATE * (1 - ra["wer"]):
            entry.update(regression="accuracy", why=f"WER {100 * ra['wer']:.2f} -> {100 * rb['wer']:.2f} %")
    found = speed_verdicts([(a, b) for _, a, b in timed], min_effect)
    decided = {i: v for (i, _, _), v in zip(timed, found) if v}
    for i, entry in enumerate(out):
        if entry["verdict"]:
            continue
        direction = decided.get(i)
        entry["verdict"] = direction or f"no change beyond {100 * min_effect:.0f} %"
        if direction == "slower" and not entry["regression"]:
            entry["regression"] = "slower"
    return out


def markdown(rows: list[dict], old: str, new: str, min_effect: float) -> str:
    def f(v, spec):
        return "" if v is None else spec.format(v)

    body = [[r["shape"], r["cell"], f(r["old_rtf"], "{:.4f}"), f(r["new_rtf"], "{:.4f}"),
             f(r["ratio"], "{:.3f}") + (f" [{r['ratio_low']:.3f}, {r['ratio_high']:.3f}]" if r["ratio_low"] else ""),
             r["verdict"] + (f" ({r['why']})" if r["why"] else ""), r["regression"],
             f(r["wer_delta_pct"], "{:+.2f}"), f(r["peak_rss_delta_mib"], "{:+.0f}")] for r in rows]
    table = tabulate(body, headers=["container", "cell", "old RTF", "new RTF", "new/old time (95 %)", "verdict",
                                    "regression", "WER Δ points", "peak RSS Δ MiB"], tablefmt="github",
                     disable_numparse=True)
    return (f"# {new} against {old}\n\nA verdict needs a change beyond {100 * min_effect:.0f} % with the "
            f"family-wise error held at {100 * ALPHA:.0f} % over every cell (Welch t on log RTF, Holm).\n\n{table}\n")


def csv_text(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: ("" if r[k] is None else r[k]) for k in FIELDS} for r in rows)
    return buf.getvalue()


def parse_fail_on(text: str) -> set[str]:
    kinds = {k.strip() for k in text.replace(",", " ").split()}
    if kinds == {"never"}:
        return set()
    if kinds == {"any"}:
        return set(FAIL_KINDS)
    unknown = kinds - set(FAIL_KINDS)
    if unknown:
        raise UserError(f"--fail-on {text!r}: choose from any, never, {', '.join(FAIL_KINDS)}")
    return kinds


def run_compare(old: str, new: str, out: Path | None, min_effect: float = DEFAULT_MIN_EFFECT,
                fail_on: str = "any") -> int:
    """Prints (and writes) the comparison; returns the exit status."""
    kinds = parse_fail_on(fail_on)
    rows = compare(old, new, min_effect)
    if not rows:
        raise UserError(f"compare: {old} and {new} have no cell in common")
    text = markdown(rows, old, new, min_effect)
    print(text)
    if out is not None:
        write_atomic(out.with_suffix(".md"), text)
        write_atomic(out.with_suffix(".csv"), csv_text(rows))
        print(f"written: {out.with_suffix('.md')}, {out.with_suffix('.csv')}")
    regressions = [r for r in rows if r["regression"] in kinds]
    if regressions:
        print(f"compare: {len(regressions)} regression(s): " + ", ".join(
            f"{r['cell']} ({r['shape']}): {r['regression']}" for r in regressions))
        return 1
    return 0
