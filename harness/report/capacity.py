"""The capacity report: one row per serving cell (results/<SUT>/serving/**/serve.json), its answer lines and
the latency-vs-offered-load plot (the hockey stick) per core count.

    results/<SUT>/serving/capacity.md, capacity.csv, plots/capacity_latency_<c>c.png

A row: the highest Server QPS whose p99 met the bound, that rate in audio seconds per second (and per core),
p50/p90/p99 at that load, the Offline throughput, WER of the accuracy run, the audit's verdict, and energy
per audio hour at the capacity point with its source. One LoadGen run per point, so no intervals: the answer
calls two capacities within the search's resolution a tie. Rows that fail the audit or the accuracy gate
are shown and marked, and never win.
"""
from __future__ import annotations

from pathlib import Path

from ..evidence.gate import ACCURACY_GATE
from ..files import read_json_object, write_atomic
from ..serve.search import TOLERANCE
from ..serve.settings import CELL_RECORD, SERVING_AREA
from .columns import Column
from .plots import _pyplot, _save, engine_colour
from .tables import csv_text, markdown_table

CAPACITY_MD, CAPACITY_CSV = "capacity.md", "capacity.csv"
COLUMNS = [
    Column("model", "model"), Column("cores", "cores"), Column("cell", "engine / variant / layout"),
    Column("capacity_qps", "max QPS at bound", "{:.3f}"), Column("audio_s_per_s", "audio s/s", "{:.1f}"),
    Column("audio_s_per_s_per_core", "audio s/s per core", "{:.1f}"),
    Column("p50_ms", "p50 ms", "{:.0f}"), Column("p90_ms", "p90 ms", "{:.0f}"), Column("p99_ms", "p99 ms", "{:.0f}"),
    Column("offline_qps", "offline QPS", "{:.3f}"), Column("offline_audio_s_per_s", "offline audio s/s", "{:.1f}"),
    Column("wer", "WER %", "pct"), Column("gate", "gate"), Column("audit", "audit"),
    Column("wh_per_audio_hour", "Wh per audio hour", "{:.2f}"), Column("energy_source", "energy source"),
    Column("points", "QPS points"), Column("loadgen_validity", "LoadGen"),
    Column("foreign_share", "other load at capacity", "pct0"),
]
LOADED_SHARE = 0.10   # other processes' share of the cell's CPUs above which a point is called loaded


def load_cells(serving_dir: Path) -> list[dict]:
    return [r for p in sorted(serving_dir.glob(f"container_*/*/{CELL_RECORD}")) if (r := read_json_object(p))]


def capacity_row(rec: dict) -> dict:
    cap = rec.get("capacity") or {}
    offline = rec.get("offline") or {}
    lat = (cap.get("loadgen") or {}).get("latency_ms") or {}
    sut = cap.get("sut") or {}
    energy = cap.get("energy") or offline.get("energy") or {}
    layout = rec["layout"]
    points = rec.get("server_points") or []
    return {
        "sut": rec["sut"], "model": rec["model"], "cores": rec["cores"], "engine": rec["engine"],
        "variant": rec["variant"], "layout": layout["name"],
        "cell": f"{rec['engine']} {rec['variant']} {layout['workers']}x{layout['threads']}"
                + (f" batch≤{layout['batch']}" if layout["batch"] > 1 else ""),
        "capacity_qps": cap.get("target_qps"), "audio_s_per_s": sut.get("audio_s_per_s"),
        "audio_s_per_s_per_core": sut["audio_s_per_s"] / rec["cores"] if sut.get("audio_s_per_s") else None,
        "p50_ms": lat.get("p50"), "p90_ms": lat.get("p90"), "p99_ms": lat.get("p99"),
        "offline_qps": (offline.get("loadgen") or {}).get("samples_per_second"),
        "offline_audio_s_per_s": (offline.get("sut") or {}).get("audio_s_per_s"),
        "wer": (rec.get("accuracy") or {}).get("wer"), "audit": (rec.get("audit") or {}).get("verdict"),
        "wh_per_audio_hour": energy.get("wh_per_audio_hour"),
        "energy_source": (energy.get("source") or "") + ("" if cap or not energy else " (offline: no server capacity)"),
        "energy_at": "server capacity" if cap else "offline",
        "points": " ".join(f"{p['target_qps']:g}{'✓' if p['meets_bound'] else '✗'}" for p in
                           sorted(points, key=lambda p: p["target_qps"])),
        "loadgen_validity": (cap.get("loadgen") or {}).get("validity"),
        # what else ran on the cell's CPUs during the capacity point (harness/run/container.py measures it)
        "foreign_share": cap.get("foreign_busy_share"),
        "bound_ms": rec["settings"]["latency_bound_ms"],
    }


def apply_gate(rows: list[dict]) -> str:
    """The answer's rule: word accuracy at least ACCURACY_GATE of the most accurate serving row's."""
    scored = [r for r in rows if r["wer"] is not None]
    if not scored:
        for r in rows:
            r["gate"] = None
        return "accuracy is not gated: no row has a WER against references"
    best = min(scored, key=lambda r: r["wer"])
    for r in rows:
        keeps = r["wer"] is not None and 1 - r["wer"] >= ACCURACY_GATE * (1 - best["wer"])
        r["gate"] = None if r["wer"] is None else ("pass" if keeps else "FAIL")
    return (f"word accuracy at least {100 * ACCURACY_GATE:.0f} % of the most accurate serving row's "
            f"({best['cell']}, WER {100 * best['wer']:.2f} %)")


def _eligible(r: dict) -> bool:
    return r["gate"] != "FAIL" and r["audit"] == "pass"


def answer_lines(rows: list[dict]) -> list[str]:
    lines = []
    for (model, cores) in sorted({(r["model"], r["cores"]) for r in rows}):
        group = [r for r in rows if r["model"] == model and r["cores"] == cores and _eligible(r)]
        served = sorted((r for r in group if r["capacity_qps"]), key=lambda r: -r["capacity_qps"])
        if not served:
            lines.append(f"- {model}, {cores} core(s): no cell met the p99 bound while passing the audit and gate")
        else:
            top = served[0]
            tied = [r for r in served[1:] if r["capacity_qps"] >= (1 - TOLERANCE) * top["capacity_qps"]]
            what = (f"highest capacity: {top['cell']}, {top['capacity_qps']:.3f} QPS "
                    f"({top['audio_s_per_s']:.1f} audio s/s) at p99 ≤ {top['bound_ms']:g} ms")
            if tied:
                what += " — tied within the search's resolution with " + ", ".join(r["cell"] for r in tied)
            loaded = [r["cell"] for r in [top, *tied] if (r["foreign_share"] or 0) > LOADED_SHARE]
            if loaded:
                what += f"; other processes used over {100 * LOADED_SHARE:.0f} % of the CPUs during " \
                        + ", ".join(loaded) + "'s capacity point"
            lines.append(f"- {model}, {cores} core(s): {what}")
        energy = sorted((r for r in group if r["wh_per_audio_hour"] is not None), key=lambda r: r["wh_per_audio_hour"])
        if energy:
            e = energy[0]
            lines.append(f"- {model}, {cores} core(s): least energy per audio hour: {e['cell']}, "
                         f"{e['wh_per_audio_hour']:.2f} Wh at its {e['energy_at']} point ({e['energy_source']})")
    return lines


def plot_hockey_sticks(rows_by_cell: list[tuple[dict, dict]], out_dir: Path) -> list[Path]:
    """p99 (solid) and p50 (dashed) against the offered Server QPS, one line per cell, a panel per core count."""
    plt = _pyplot()
    written = []
    engines = sorted({rec["engine"] for rec, _ in rows_by_cell})
    for cores in sorted({rec["cores"] for rec, _ in rows_by_cell}):
        cells = [(rec, row) for rec, row in rows_by_cell if rec["cores"] == cores and rec.get("server_points")]
        if not cells:
            continue
        fig, ax = plt.subplots(figsize=(7, 4.5))
        styles = ["-", "-.", ":", (0, (5, 1))]
        for i, (rec, row) in enumerate(cells):
            pts = sorted((p for p in rec["server_points"] if (p.get("loadgen") or {}).get("latency_ms")),
                         key=lambda p: p["target_qps"])
            if not pts:
                continue
            colour = engine_colour(rec["engine"], engines)
            x = [p["target_qps"] for p in pts]
            ax.plot(x, [p["loadgen"]["latency_ms"]["p99"] for p in pts], linestyle=styles[i % len(styles)],
                    color=colour, marker="o", label=f"{row['cell']} p99")
            ax.plot(x, [p["loadgen"]["latency_ms"]["p50"] for p in pts], linestyle="--", color=colour,
                    marker=".", alpha=0.5, label=f"{row['cell']} p50")
            for p in pts:
                if not p["meets_bound"]:
                    ax.plot(p["target_qps"], p["loadgen"]["latency_ms"]["p99"], "x", color="black", markersize=8)
        bound = cells[0][1]["bound_ms"]
        ax.axhline(bound, color="grey", linewidth=1)
        ax.text(ax.get_xlim()[0], bound, f" p99 bound {bound:g} ms", va="bottom", fontsize=7, color="grey")
        ax.set_yscale("log")
        ax.set_xlabel("offered load: Server QPS (Poisson arrivals)")
        ax.set_ylabel("latency (ms, log scale)")
        ax.set_title(f"{cells[0][0]['sut']}: latency vs offered load, {cores} core(s) (x: over the bound)", fontsize=9)
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=7)
        path = out_dir / f"capacity_latency_{cores}c.png"
        _save(fig, path)
        written.append(path)
    return written


def capacity_rows(records: list[dict]) -> tuple[list[dict], str]:
    """The rows, best first per model and core count, with the gate applied, and the gate's rule."""
    rows = [capacity_row(r) for r in records]
    rows.sort(key=lambda r: (r["model"], r["cores"], -(r["capacity_qps"] or 0)))
    return rows, apply_gate(rows)


def write_capacity_report(serving_dir: Path) -> Path:
    """capacity.md (table, answer lines, plots), capacity.csv and the plots; returns capacity.md."""
    return _write_report(serving_dir, load_cells(serving_dir))[0]


def _write_report(serving_dir: Path, records: list[dict]) -> tuple[Path, list[str]]:
    """The capacity report of these serving cells; capacity.md and its answer lines."""
    rows, rule = capacity_rows(records)
    lines = answer_lines(rows)
    plots = plot_hockey_sticks([(rec, capacity_row(rec)) for rec in records], serving_dir / "plots")
    settings = records[0]["settings"] if records else {}
    text = [f"# Serving capacity: {serving_dir.parent.name}\n",
            f"MLPerf LoadGen, Server scenario (Poisson arrivals); capacity = the highest QPS whose p99 latency "
            f"met {settings.get('latency_bound_ms', 0):g} ms in a run of at least "
            f"{settings.get('duration_ms', 0) / 1000:g} s and {settings.get('min_queries')} queries"
            + (" (MLPerf durations: LoadGen VALID required)" if settings.get("mlperf") else
               " (too short for LoadGen's early-stopping estimate, which calls such runs INVALID)")
            + f". One run per point, no intervals. Gate: {rule}. Audit: responses LoadGen sampled under load "
            "must equal the accuracy run's. Energy at the capacity point, source on every row.\n",
            *lines, "", markdown_table(rows, COLUMNS)]
    text += [f"![{p.stem}](plots/{p.name})" for p in plots]
    write_atomic(serving_dir / CAPACITY_MD, "\n".join(text) + "\n", only_if_changed=True)
    write_atomic(serving_dir / CAPACITY_CSV, csv_text(rows, COLUMNS), only_if_changed=True)
    return serving_dir / CAPACITY_MD, lines


class CapacityExporter:
    """`python -m harness report` rebuilds every SUT's capacity report from its serve.json files too, and
    leaves its answer lines and page in `report.capacity` for RESULTS.md."""
    name = "capacity"

    def export(self, report) -> list[Path]:
        written = []
        for serving_dir in sorted(report.results.glob(f"*/{SERVING_AREA}")):
            records = load_cells(serving_dir)
            if not records:
                continue
            md, lines = _write_report(serving_dir, records)
            written.append(md)
            report.capacity[serving_dir.parent.name] = {"md": md, "lines": lines}
        return written
