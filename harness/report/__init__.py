"""`python -m harness report`: tables, plots and RESULTS.md, rebuilt from `results/` alone.

One `Report` (rows, the cells' records, the comparisons) is built once; every exporter reads it.
A new output is one exporter class with `name` and `export(report) -> list[Path]`, added to EXPORTERS.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..evidence.gate import add_derived
from ..evidence.records import collect_cells
from ..evidence.rows import row_from_cell
from ..files import read_json, write_atomic
from ..layout import DEFAULT_RESULTS, PLAN_FILE, RESULTS_MD, RUNS_DIR
from .answer import build_answer
from .capacity import CapacityExporter
from .discovery import DiscoveryExporter
from .plots import PlotsExporter
from .results_md import ResultsMdExporter
from .tables import TablesExporter


class AnswerJsonExporter:
    """answer.json beside RESULTS.md (report/answer.py; its schema in answer.schema.json)."""
    name = "answer.json"

    def export(self, report) -> list[Path]:
        import json

        write_atomic(report.answer_path, json.dumps(report.answer, indent=1, sort_keys=True) + "\n",
                     only_if_changed=True)
        return [report.answer_path]


EXPORTERS = [TablesExporter(), PlotsExporter(), AnswerJsonExporter(), DiscoveryExporter(), CapacityExporter(),
             ResultsMdExporter()]  # RESULTS.md last: it links the plots, takes the discovery's and capacity's lines


@dataclass
class Report:
    results: Path
    results_md: Path
    rows: list[dict]
    records: dict
    comparisons: dict
    answer: dict = field(default_factory=dict)
    plots: dict = field(default_factory=dict)
    discovery: dict = field(default_factory=dict)  # SUT -> its ranking of model builds (report/discovery.py)
    capacity: dict = field(default_factory=dict)   # SUT -> its serving capacity answer (report/capacity.py)
    results_md_changed: bool = False

    def suts_with_area(self, area: str) -> list[str]:
        return sorted(p.parent.name for p in self.results.glob(f"*/{area}") if p.is_dir())

    @property
    def answer_path(self) -> Path:
        return self.results_md.with_name("answer.json")

    @property
    def suts(self) -> list[str]:
        return sorted({r["sut"] for r in self.rows})


def build_report(results: Path, results_md: Path | None = None) -> Report:
    records = collect_cells(results)
    rows = [row_from_cell(r) for r in records]
    add_prices(rows, results)
    rows.sort(key=lambda r: (r["sut"], r["cores"] or 0, r["memory_gb"] or 0, r["engine"] or "", r["variant"] or ""))
    comparisons = add_derived(rows)
    answer = build_answer(rows, comparisons, run_plans(results))
    return Report(results, results_md or default_results_md(results), rows,
                  {(r["sut"], r["shape"], r["cell"]): r for r in records}, comparisons, answer)


def run_plans(results: Path) -> dict[str, dict]:
    """run id -> that run's plan (results/<SUT>/runs/<run id>.json), so a comparison names every run in it."""
    plans = {}
    for path in results.glob(f"*/{RUNS_DIR}/*.json"):
        plan = read_json(path)
        if isinstance(plan, dict) and plan.get("run_id"):
            plans[plan["run_id"]] = plan
    return plans


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


def write_report(results: Path, results_md: Path | None = None, exporters=None) -> Report:
    report = build_report(results, results_md)
    for exporter in exporters or EXPORTERS:
        exporter.export(report)
    print(f"report: {len(report.rows)} cells, {len(report.suts)} SUT(s); {report.results_md} "
          f"{'updated' if report.results_md_changed else 'unchanged'}")
    return report


def print_answer(report: Report, sut: str | None = None, stream=None) -> None:
    """The verdict lines of every comparison (of one SUT), hyperfine-style, and where the full report is."""
    import sys

    from .verdict_text import answer_text, comparison_title

    stream = stream or sys.stdout
    for comparison in report.answer["comparisons"]:
        if sut is not None and comparison["sut"] != sut:
            continue
        print(f"\nAnswer for {comparison['sut']}: {comparison_title(comparison)}", file=stream)
        for line in answer_text(comparison):
            print(f"  {line}", file=stream)
    print(f"\nFull report: {report.results_md} (machine-readable: {report.answer_path})", file=stream)
