"""`python -m harness compare OLD NEW`: how each cell changed between two results (an engine upgrade, a
new machine): RTF ratio NEW/OLD with its 95 % interval and a verdict, WER and memory deltas.

OLD and NEW are results folders (each holding <SUT>/container_*/...) or SUT folders, or SUT names
under the default results folder. Cells match by container shape and engine-model-variant.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

from tabulate import tabulate

from ..errors import UserError
from ..files import write_atomic
from ..layout import DEFAULT_RESULTS
from .cells import collect_cells, common_timings
from .rows import row_from_cell
from .stats import paired_ratio

FIELDS = ["shape", "cell", "old_rtf", "new_rtf", "ratio", "ratio_low", "ratio_high", "verdict",
          "wer_delta_pct", "peak_rss_delta_mib", "old_rounds", "new_rounds"]


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


def _cells(arg: str) -> dict[tuple[str, str], dict]:
    root, sut = _resolve(arg)
    records = [r for r in collect_cells(root) if sut is None or r["sut"] == sut]
    if not records:
        raise UserError(f"compare: no results under {arg}")
    return {(r["shape"], r["cell"]): r for r in records}


def verdict(ratio) -> str:
    if ratio is None:
        return "not comparable"
    _, lo, hi = ratio
    return "faster" if hi < 1 else "slower" if lo > 1 else "no significant change"


def compare(old: str, new: str) -> list[dict]:
    a, b = _cells(old), _cells(new)
    out = []
    for key in sorted(set(a) & set(b)):
        ra, rb = a[key], b[key]
        row_a, row_b = row_from_cell(ra), row_from_cell(rb)
        times_a, times_b, audio = common_timings(ra, rb)
        ratio = paired_ratio(times_b, times_a, audio, pair_rounds=False) if times_a.size and times_b.size else None
        out.append({
            "shape": key[0], "cell": key[1], "old_rtf": row_a["rtf"], "new_rtf": row_b["rtf"],
            "ratio": ratio[0] if ratio else None, "ratio_low": ratio[1] if ratio else None,
            "ratio_high": ratio[2] if ratio else None, "verdict": verdict(ratio),
            "wer_delta_pct": 100 * (row_b["wer"] - row_a["wer"]) if None not in (row_a["wer"], row_b["wer"]) else None,
            "peak_rss_delta_mib": (row_b["peak_rss_mib"] - row_a["peak_rss_mib"])
            if None not in (row_a["peak_rss_mib"], row_b["peak_rss_mib"]) else None,
            "old_rounds": row_a["n_rounds"], "new_rounds": row_b["n_rounds"],
        })
    return out


def markdown(rows: list[dict], old: str, new: str) -> str:
    def f(v, spec):
        return "" if v is None else spec.format(v)

    body = [[r["shape"], r["cell"], f(r["old_rtf"], "{:.4f}"), f(r["new_rtf"], "{:.4f}"),
             f(r["ratio"], "{:.3f}") + (f" [{r['ratio_low']:.3f}, {r['ratio_high']:.3f}]" if r["ratio"] else ""),
             r["verdict"], f(r["wer_delta_pct"], "{:+.2f}"), f(r["peak_rss_delta_mib"], "{:+.0f}")] for r in rows]
    table = tabulate(body, headers=["container", "cell", "old RTF", "new RTF", "new/old time (95 %)", "verdict",
                                    "WER Δ points", "peak RSS Δ MiB"], tablefmt="github", disable_numparse=True)
    return f"# {new} against {old}\n\n{table}\n"


def csv_text(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: ("" if r[k] is None else r[k]) for k in FIELDS} for r in rows)
    return buf.getvalue()


def run_compare(old: str, new: str, out: Path | None) -> list[dict]:
    rows = compare(old, new)
    if not rows:
        raise UserError(f"compare: {old} and {new} have no cell in common")
    text = markdown(rows, old, new)
    print(text)
    if out is not None:
        write_atomic(out.with_suffix(".md"), text)
        write_atomic(out.with_suffix(".csv"), csv_text(rows))
        print(f"written: {out.with_suffix('.md')}, {out.with_suffix('.csv')}")
    return rows
