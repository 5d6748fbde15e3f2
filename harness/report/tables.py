"""Exporters for tables: summary_table.{md,csv} per SUT and container shape, and results/merged.csv."""
from __future__ import annotations

import csv
import io
from pathlib import Path

from tabulate import tabulate

from ..files import write_atomic
from .columns import CSV, TABLE, Column, columns_for, fmt


def markdown_table(rows: list[dict], columns: list[Column]) -> str:
    used = [c for c in columns if any(r.get(c.key) not in (None, "") for r in rows)] or columns[:1]
    body = [[fmt(r.get(c.key), c.fmt).replace("|", "\\|") for c in used] for r in rows]
    return tabulate(body, headers=[c.header for c in used], tablefmt="github", disable_numparse=True) + "\n"


def csv_text(rows: list[dict], columns: list[Column] | None = None) -> str:
    """Full-precision CSV of the rows: the registry's CSV columns, or the given ones."""
    keys = [c.key for c in columns or columns_for(CSV)]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in keys})
    return buf.getvalue()


class TablesExporter:
    name = "tables"

    def export(self, report) -> list[Path]:
        written = []
        shapes: dict[tuple[str, str], list[dict]] = {}
        for row in report.rows:
            shapes.setdefault((row["sut"], row["shape"]), []).append(row)
        for (sut, shape), group in shapes.items():
            folder = report.results / sut / shape
            title = f"# {sut} / {shape}\n\n"
            write_atomic(folder / "summary_table.md", title + markdown_table(group, columns_for(TABLE)),
                         only_if_changed=True)
            write_atomic(folder / "summary_table.csv", csv_text(group), only_if_changed=True)
            written += [folder / "summary_table.md", folder / "summary_table.csv"]
        write_atomic(report.results / "merged.csv", csv_text(report.rows), only_if_changed=True)
        written.append(report.results / "merged.csv")
        return written
