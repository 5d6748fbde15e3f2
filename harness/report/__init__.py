"""`python -m harness report`: tables, plots and RESULTS.md, rebuilt from `results/` alone."""
from __future__ import annotations

from pathlib import Path

from .collect import collect
from .plots import plot_sut
from .results_md import render_block, sut_section, update_results_md
from .tables import write_tables

ROOT = Path(__file__).resolve().parent.parent.parent


def write_report(results: Path, results_md: Path | None = None) -> list[dict]:
    results_md = results_md or ROOT / "RESULTS.md"
    rows = collect(results)
    write_tables(results, rows)
    sections = []
    for sut in sorted({r["sut"] for r in rows}):
        group = [r for r in rows if r["sut"] == sut]
        plots = plot_sut(sut, group, results / "plots")
        sections.append(sut_section(sut, group, results, plots, results_md.parent))
    changed = update_results_md(results_md, render_block(sections))
    print(f"report: {len(rows)} runs, {len(sections)} SUT(s); {results_md} "
          f"{'updated' if changed else 'unchanged'}")
    return rows
