"""Exporter: the ranking of model builds, results/<SUT>/discovery.{md,csv} and a speed-vs-WER plot, rebuilt
by `harness report` from the discovery area's cells and its builds.json (what each build is, or why it was
not made), which `harness discover` writes. RESULTS.md takes its recommendation lines from here.

Per core count, builds are ranked by RTF (geometric mean of runs); the recommended build is the fastest `ort` cell
within the accuracy gate (the same gate rule as the main answer), and a build is named alone only when
the paired 95 % interval of its time ratio to every other passing build lies below 1; otherwise the
tie is named. Each row also carries its paired time ratio to faster-whisper int8 in the same rounds.
"""
from __future__ import annotations

import os
from pathlib import Path

from engines.registry import BASELINE_ENGINE, SPECS

from ..evidence.gate import apply_gate, gated
from ..evidence.records import build_cell_record, collect_cells
from ..evidence.rows import row_from_cell
from ..evidence.stats import ratio
from ..evidence.verdicts import Contest, decide
from ..files import read_json, write_atomic
from ..layout import CELL_FILE, DISCOVERY_MD, round_dirs
from .columns import DISCOVERY, columns_for
from .host_text import describe
from .tables import csv_text, markdown_table

AREA = "discovery"                # results/<SUT>/discovery/: the cells `harness discover` ran
BUILDS_FILE = "builds.json"       # in the area: what each build is, or why it was not made
REFERENCE = ("faster-whisper", "int8")
STORE_BUILDS = {"fp32": "the store's onnx/ (optimum export, loaded at level all)",
                "int8": "the store's onnx-int8/ (MatMulNBits 8-bit, blocks of 32)"}
PLOT = "discovery_wer_vs_rtf.png"


def _ratio_text(r) -> str:
    if r is None:
        return ""
    return f"{r.point:.2f}x" + (f" ({r.low:.2f}-{r.high:.2f})" if r.low is not None else " (one run)")


def collect_rows(results: Path, sut: str, builds: dict) -> tuple[list[dict], dict, dict | None]:
    """The discovery cells' rows (with build facts), their records by id, and the baseline's row."""
    area = results / sut / AREA
    # cell.json beside each cell, as in the main report: a clone re-ranks from them alone
    records = [r for r in collect_cells(area.parent) if r["sut"] == area.name]
    rows = []
    baseline_cell = None
    for record in records:
        row = row_from_cell(record)
        if row["engine"] == "ort":
            info = builds.get(row["variant"]) or {} if row["variant"] not in STORE_BUILDS else {}
            row.update(build=row["variant"], how=STORE_BUILDS.get(row["variant"]) or info.get("how", ""),
                       targets=info.get("targets", "any x86-64 (onnxruntime picks kernels at run time)"),
                       size_mb=info.get("size_mb"))
        else:
            row.update(build=f"{row['engine']} {row['variant']}", how="reference engine", targets="")
        accuracy = record.get("accuracy") or {}
        run = accuracy.get("baseline_run")
        if run and baseline_cell is None and accuracy.get("rounds"):
            round_dir = area / record["shape"] / record["cell"] / f"round-{accuracy['rounds'][0]}"
            target = Path(os.path.normpath(round_dir / run))
            if (target.parent / "cell.json").is_file() or target.is_dir():
                baseline_cell = target.parent
        rows.append(row)
    if baseline_cell is None:  # the declared reference in the SUT's own folder (make compare's, or discover's)
        model = next((r["model"] for r in rows if r.get("model")), None)
        name = f"{BASELINE_ENGINE}-{model}-{SPECS[BASELINE_ENGINE].default_variant}"
        found = sorted(p for p in (results / sut).glob(f"container_*/{name}") if p.is_dir())
        baseline_cell = found[0] if found else None
    baseline_row = None
    if baseline_cell is not None:
        baseline_record = build_cell_record(baseline_cell) if round_dirs(baseline_cell) else \
            read_json(baseline_cell / CELL_FILE)
        records.append(baseline_record)
        baseline_row = row_from_cell(baseline_record)
        baseline_row["baseline_at"] = str(baseline_cell.relative_to(results))
    if baseline_row is not None:  # the reference of this SUT, gating the area's rows
        baseline_row["sut"] = area.name
    return rows, {(r["sut"], r["shape"], r["cell"]): r for r in records}, baseline_row


def rank(rows: list[dict], records: dict, baseline_row: dict | None) -> dict[int, dict]:
    """cores -> {rows (ranked), rule, verdict}; sets each row's rank, gate and ratio to the reference."""
    out = {}
    for cores in sorted({r["cores"] for r in rows if r["cores"]}):
        group = [r for r in rows if r["cores"] == cores]
        rule, _ = apply_gate(group, group + ([dict(baseline_row)] if baseline_row else []))
        reference = next((r for r in group if (r["engine"], r["variant"]) == REFERENCE), None)
        for row in group:
            row["vs_reference"] = _ratio_text(ratio(row["runs"], reference["runs"])) \
                if reference is not None and row is not reference and row["status"] == "ok" else ""
        candidates = [r for r in gated(group) if r["engine"] == "ort"]
        verdict = decide(Contest(f"Fastest build at {cores} core(s)", f"fastest@{cores}c", candidates))
        ordered = sorted(group, key=lambda r: (r["status"] != "ok", r["rtf"] if r["rtf"] is not None else 9e9))
        for i, row in enumerate(ordered, 1):
            row["rank"] = i if row["status"] == "ok" else ""
        out[cores] = {"rows": ordered, "rule": rule, "verdict": verdict}
    return out


def recommendation(cores: int, ranked: dict) -> str:
    verdict = ranked["verdict"]
    if verdict is None:
        return f"At {cores} core(s): no `ort` build finished within the accuracy gate."
    lead = verdict.leader
    vs = f"; time vs faster-whisper int8 {lead['vs_reference']}" if lead.get("vs_reference") else ""
    if not verdict.others:
        return f"At {cores} core(s): one `ort` build within the gate, **{lead['build']}** (RTF {lead['rtf']:.4f}{vs})."
    if verdict.winner is not None:
        runner = verdict.others[0]
        beyond = f", {_ratio_text(runner.ratio)} of {runner.row['build']}'s time" if runner.ratio else ""
        return f"At {cores} core(s): **{lead['build']}** (RTF {lead['rtf']:.4f}{beyond}{vs})."
    tied = ", ".join(f"{s.row['build']} ({_ratio_text(s.ratio) or 'no paired ratio'})" for s in verdict.tied)
    return (f"At {cores} core(s): **{lead['build']}** is fastest (RTF {lead['rtf']:.4f}{vs}) but tied within "
            f"the 95 % intervals with {tied}.")


def write_ranking(results: Path, sut: str) -> dict:
    """discovery.{md,csv} and the plot of one SUT; returns {"md": path, "lines": the recommendation per core
    count, "caveats": lines that travel with them}."""
    builds = read_json(results / sut / AREA / BUILDS_FILE) or {}
    rows, records, baseline_row = collect_rows(results, sut, builds)
    ranked = rank(rows, records, baseline_row)
    sut_dir = results / sut
    model = next((r["model"] for r in rows if r.get("model")), "?")
    cols = columns_for(DISCOVERY)
    lines = [f"# Model builds of {model} on {sut}\n",
             "Every build runs as an `ort` cell in the same pinned containers and rounds, with the store's "
             "`ort` fp32 and int8 and faster-whisper int8 beside it; `python -m harness discover` ran them and "
             "`python -m harness report` wrote this page.\n"]
    host = next((r["host"] for r in rows if r.get("host")), None)
    if host:
        lines += [f"- {line}" for line in describe(host)] + [""]
    if baseline_row is not None:
        lines.append(f"Accuracy against the baseline's transcripts from `{baseline_row['baseline_at']}` "
                     f"(reused when it exists for the same model, corpus and decoding).\n")
    else:
        lines.append("No complete baseline run was found: WER vs baseline is empty.\n")
    caveats = []
    if rows and max(r["n_rounds"] for r in rows) < 2:
        caveats.append("One round: a screen, not a verdict (one run per build has no interval); run the leading "
                       "builds again with `--repeats 3` (or more).")
    lines += [c + "\n" for c in caveats]
    picks = [recommendation(cores, r) for cores, r in ranked.items()]
    for (cores, r), pick in zip(ranked.items(), picks):
        lines += [f"## {cores} core(s)\n", pick + "\n", f"Gate: {r['rule']}.\n", markdown_table(r["rows"], cols)]
    skipped = {n: info for n, info in builds.items() if info.get("skipped")}
    if skipped:
        lines += ["## Builds not made here\n"] + [f"- `{n}`: {info['skipped']}" for n, info in sorted(skipped.items())]
        lines.append("")
    lines.append(f"![speed vs WER]({PLOT})\n")
    md = sut_dir / DISCOVERY_MD
    write_atomic(md, "\n".join(lines), only_if_changed=True)
    write_atomic(sut_dir / "discovery.csv", csv_text([row for r in ranked.values() for row in r["rows"]], cols),
                 only_if_changed=True)
    _plot(ranked, sut_dir / PLOT)
    return {"md": md, "lines": picks, "caveats": caveats}


class DiscoveryExporter:
    """Each SUT with a discovery area gets its ranking; RESULTS.md reads `report.discovery`."""
    name = "discovery"

    def export(self, report) -> list[Path]:
        out = []
        for sut in report.suts_with_area(AREA):
            found = write_ranking(report.results, sut)
            report.discovery[sut] = found
            out.append(found["md"])
        return out


def _plot(ranked: dict, path: Path) -> None:
    from .plots import _pyplot, _save

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    for cores, r in ranked.items():
        ok = [row for row in r["rows"] if row["status"] == "ok" and row["rtf"] and row["wer"] is not None]
        ax.scatter([row["rtf"] for row in ok], [100 * row["wer"] for row in ok], label=f"{cores} core(s)")
        for row in ok:
            ax.annotate(row["build"], (row["rtf"], 100 * row["wer"]), fontsize=6, alpha=0.8)
    ax.set_xlabel("RTF (geometric mean of runs; lower is faster)")
    ax.set_ylabel("WER % against references")
    ax.set_title("Model builds: speed against accuracy")
    ax.legend()
    _save(fig, path)
