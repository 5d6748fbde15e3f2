"""`python -m harness report`: tables, plots and RESULTS.md, rebuilt from `results/` alone.

One `Report` (rows, the cells' records, the comparisons) is built once; every exporter reads it.
A new output is one exporter class with `name` and `export(report) -> list[Path]`, added to EXPORTERS.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..files import read_json
from ..layout import DEFAULT_RESULTS, PLAN_FILE, RESULTS_MD
from .answer import add_derived, records_by_id
from .cells import collect_cells
from .plots import PlotsExporter
from .results_md import ResultsMdExporter
from .rows import row_from_cell
from .tables import TablesExporter

EXPORTERS = [TablesExporter(), PlotsExporter(), ResultsMdExporter()]  # plots before RESULTS.md links them


@dataclass
class Report:
    results: Path
    results_md: Path
    rows: list[dict]
    records: dict
    comparisons: dict
    plots: dict = field(default_factory=dict)
    results_md_changed: bool = False

    @property
    def suts(self) -> list[str]:
        return sorted({r["sut"] for r in self.rows})


def build_report(results: Path, results_md: Path | None = None) -> Report:
    records = collect_cells(results)
    rows = [row_from_cell(r) for r in records]
    add_prices(rows, results)
    rows.sort(key=lambda r: (r["sut"], r["cores"] or 0, r["memory_gb"] or 0, r["engine"] or "", r["variant"] or ""))
    comparisons = add_derived(rows)
    return Report(results, results_md or default_results_md(results), rows, records_by_id(records), comparisons)


def add_prices(rows: list[dict], results: Path) -> None:
    """A SUT's price per core-hour (a fleet file's, recorded in its plan.json) and each row's cost per
    audio hour: core-hours per audio hour (cores x RTF) at that price."""
    prices = {}
    for row in rows:
        if row["sut"] not in prices:
            plan = read_json(results / row["sut"] / PLAN_FILE) or {}
            prices[row["sut"]] = (plan.get("config") or {}).get("price_per_core_hour")
        price = prices[row["sut"]]
        row["price_per_core_hour"] = price
        row["cost_per_audio_h"] = price * row["cores"] * row["rtf"] if price and row.get("rtf") and row["cores"] \
            else None


def default_results_md(results: Path) -> Path:
    """The repository's RESULTS.md for the repository's results/; a RESULTS.md inside any other results
    folder, so that a run elsewhere never rewrites the repository's answer."""
    return RESULTS_MD if results.resolve() == DEFAULT_RESULTS.resolve() else results / "RESULTS.md"


def write_report(results: Path, results_md: Path | None = None, exporters=None) -> list[dict]:
    report = build_report(results, results_md)
    for exporter in exporters or EXPORTERS:
        exporter.export(report)
    print(f"report: {len(report.rows)} cells, {len(report.suts)} SUT(s); {report.results_md} "
          f"{'updated' if report.results_md_changed else 'unchanged'}")
    return report.rows
