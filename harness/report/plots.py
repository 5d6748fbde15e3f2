"""Exporter: PNG charts per SUT under results/plots/: scaling with cores (95 % interval bars), time per file,
memory, and WER against speed with the front of the rows within the accuracy gate, one panel per model.

Every chart speaks one visual language: colour is the engine (a fixed palette in the registry's order, so an
engine keeps its colour from chart to chart), the marker is the precision, a hollow marker is a row that fails
the accuracy gate, a dashed line a batched (throughput) cell. Legends sit outside the axes."""
from __future__ import annotations

import io
from pathlib import Path

from engines.registry import SPECS

from ..files import write_atomic
from ..layout import cell_label

PLOTS = ("rtf_vs_cores", "latency", "memory", "wer_vs_rtf")
# 20 distinguishable colours (matplotlib's tab20, dark shades first): the seven engines take the first
# seven, engines unknown to the registry (a test's, a user's) the next ones.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7",
           "#dbdb8d", "#9edae5")
# One marker per precision, the wider the number the fuller the shape; discover's builds take the rest.
MARKERS = {"fp32": "o", "bf16": "D", "f16": "s", "int8": "^", "q8_0": "v", "q5_0": "<", "q4": ">"}
SPARE_MARKERS = ("P", "X", "h", "*", "p", "d", "8", "H")
BAR_HATCHES = {"fp32": "", "bf16": "..", "f16": "//", "int8": "xx", "q8_0": "\\\\", "q5_0": "--"}
LEGEND = {"loc": "upper left", "bbox_to_anchor": (1.02, 1.0), "borderaxespad": 0.0, "fontsize": 7}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _ok(rows):
    return [r for r in rows if r["status"] == "ok" and r["rtf"]]


def _save(fig, path: Path) -> None:
    """Write only when the bytes change (no timestamp or software tag inside), like the tables."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    _pyplot().close(fig)
    write_atomic(path, buf.getvalue(), only_if_changed=True)


def engine_colour(engine: str, engines: list[str]) -> str:
    """The registry's engines in their order, then the others in the order given (sorted by the caller)."""
    order = list(SPECS) + [e for e in engines if e not in SPECS]
    return PALETTE[order.index(engine) % len(PALETTE)] if engine in order else PALETTE[-1]


def precision_marker(precision: str, precisions: list[str]) -> str:
    if precision in MARKERS:
        return MARKERS[precision]
    others = [p for p in precisions if p not in MARKERS]
    return SPARE_MARKERS[others.index(precision) % len(SPARE_MARKERS)] if precision in others else SPARE_MARKERS[0]


def fails_gate(row: dict) -> bool:
    return str(row.get("accuracy_gate") or "").lower() == "fail"


def within_gate(rows: list[dict]) -> list[dict]:
    """The rows that may stand on the front: those that pass the gate or are its reference; every row where
    nothing was gated (no reference run to gate against)."""
    if any(r.get("accuracy_gate") for r in rows):
        return [r for r in rows if str(r.get("accuracy_gate")).lower() in ("pass", "reference")]
    return list(rows)


class Style:
    """Colour, marker and line of each row's series, fixed across one SUT's charts."""

    def __init__(self, rows: list[dict]):
        self.engines = sorted({r["engine"] for r in rows})
        self.precisions = sorted({_precision(r) for r in rows})

    def colour(self, row: dict) -> str:
        return engine_colour(row["engine"], self.engines)

    def marker(self, row: dict) -> str:
        return precision_marker(_precision(row), self.precisions)

    def point(self, row: dict) -> dict:
        """matplotlib keywords for one row's marker: filled, or hollow when it fails the gate."""
        colour = self.colour(row)
        return {"marker": self.marker(row), "color": colour, "markeredgecolor": colour,
                "markerfacecolor": "none" if fails_gate(row) else colour, "markersize": 7, "linestyle": "none"}

    def legend(self, ax, rows: list[dict], extra: list | None = None) -> None:
        """Engines by colour, precisions by marker, what hollow and dashed mean: outside the axes."""
        from matplotlib.lines import Line2D

        shown = {r["engine"] for r in rows}
        order = [*SPECS, *(e for e in self.engines if e not in SPECS)]
        handles = [Line2D([], [], color=engine_colour(e, self.engines), lw=3, label=e) for e in order if e in shown]
        handles += [Line2D([], [], color="black", marker=precision_marker(p, self.precisions), linestyle="none",
                           label=p) for p in sorted({_precision(r) for r in rows})]
        if any(fails_gate(r) for r in rows):
            handles.append(Line2D([], [], color="black", marker="o", markerfacecolor="none", linestyle="none",
                                  label="hollow: fails the accuracy gate"))
        if any(_batch(r) > 1 for r in rows):
            handles.append(Line2D([], [], color="black", linestyle="--", label="dashed: batched cell"))
        ax.legend(handles=handles + (extra or []), **LEGEND)


    def bar_legend(self, ax, rows: list[dict]) -> None:
        """Engines by colour, precisions by hatch: outside the axes."""
        from matplotlib.patches import Patch

        shown = {r["engine"] for r in rows}
        order = [*SPECS, *(e for e in self.engines if e not in SPECS)]
        handles = [Patch(facecolor=engine_colour(e, self.engines), label=e) for e in order if e in shown]
        handles += [Patch(facecolor="white", edgecolor="black", hatch=_hatch(p), label=p)
                    for p in sorted({_precision(r) for r in rows})]
        ax.legend(handles=handles, **LEGEND)


def _hatch(precision: str) -> str:
    return BAR_HATCHES.get(precision, "++")


def _precision(row: dict) -> str:
    return row.get("precision") or row.get("variant") or "?"


def _batch(row: dict) -> int:
    return row.get("batch") or (row.get("decoding") or {}).get("batch_size") or 1


def _by_model(rows: list[dict]) -> dict[str, list[dict]]:
    models: dict[str, list[dict]] = {}
    for r in rows:
        models.setdefault(r.get("model") or "?", []).append(r)
    return dict(sorted(models.items()))


def _by_cell(rows):
    cells: dict[str, list[dict]] = {}
    for r in rows:
        cells.setdefault(r["cell"], []).append(r)
    return {k: sorted(v, key=lambda r: r["cores"]) for k, v in sorted(cells.items())}


def interval_error(value: float, low: float | None, high: float | None) -> tuple[float, float]:
    """Whisker lengths below and above value; an interval that does not contain the point (a median beside
    a mean's interval, say) gets a zero-length whisker on that side rather than a negative one."""
    below = value - low if low is not None else 0.0
    above = high - value if high is not None else 0.0
    return max(below, 0.0), max(above, 0.0)


def _panels(plt, n: int, width: float = 6.0, height: float = 4.5):
    fig, axes = plt.subplots(1, max(n, 1), figsize=(width * max(n, 1) + 2.5, height), squeeze=False)
    return fig, list(axes[0])


def _grouped_bars(ax, rows, value, style: Style, whisker=None):
    """One group of bars per core count, one bar per cell in its engine's colour (hatched by precision);
    with whisker, a line from the bar's top to that value (clipped at the bar)."""
    cells = sorted({r["cell"] for r in rows})
    cores = sorted({r["cores"] for r in rows})
    width = 0.8 / max(len(cells), 1)
    for i, cell in enumerate(cells):
        xs, ys, errs, first = [], [], [[], []], None
        for j, c in enumerate(cores):
            row = next((r for r in rows if r["cell"] == cell and r["cores"] == c and r.get(value)), None)
            if row is None:
                continue
            first = first or row
            xs.append(j + (i - (len(cells) - 1) / 2) * width)
            ys.append(row[value])
            _, above = interval_error(row[value], None, row.get(whisker) if whisker else None)
            errs[0].append(0.0)
            errs[1].append(above)
        if first is not None:
            ax.bar(xs, ys, width, label=cell, color=style.colour(first), edgecolor="black", linewidth=0.4,
                   hatch=_hatch(_precision(first)), yerr=errs if whisker else None, capsize=3)
    ax.set_xticks(range(len(cores)), [f"{c} core{'s' if c != 1 else ''}" for c in cores])


def _per_model_figure(sut: str, rows: list[dict], path: Path, draw, legend, width: float = 6.0) -> Path:
    """One panel per model, each drawn by draw(ax, model, its rows); the legend beside the last panel."""
    models = _by_model(rows)
    fig, axes = _panels(_pyplot(), len(models), width=width)
    for ax, (model, group) in zip(axes, models.items()):
        draw(ax, model, group)
    if rows:
        legend(axes[-1], rows)
    fig.suptitle(sut)
    _save(fig, path)
    return path


def plot_scaling(sut: str, ok: list[dict], style: Style, path: Path) -> Path:
    def draw(ax, model: str, rows: list[dict]) -> None:
        for _cell, group in _by_cell(rows).items():
            errors = [interval_error(r["rtf"], r.get("rtf_ci_low"), r.get("rtf_ci_high")) for r in group]
            ax.errorbar([r["cores"] for r in group], [r["rtf"] for r in group],
                        yerr=[[e[0] for e in errors], [e[1] for e in errors]], capsize=3, color=style.colour(group[0]),
                        linestyle="--" if _batch(group[0]) > 1 else "-", linewidth=1, marker="none")
            for r in group:
                ax.plot([r["cores"]], [r["rtf"]], **style.point(r))
        ax.set(xlabel="cores (logical CPUs = threads)", ylabel="RTF, median of rounds (lower is faster)",
               title=f"{model}: scaling with cores (bars: 95 % interval)")
        ax.set_xticks(sorted({r["cores"] for r in rows}) or [1])
        ax.grid(alpha=0.3)

    return _per_model_figure(sut, ok, path, draw, style.legend)


def plot_file_times(sut: str, ok: list[dict], style: Style, path: Path) -> Path:
    """The median file's time and the longest file's: with a corpus of a few dozen files a p95 is the
    longest file or next to it, so the whisker is named for what it is."""
    # cells reduced before the longest file was recorded carry its p95 (the same file on a small corpus)
    timed = [{**r, "longest_s": r.get("max_file_s") or r.get("p95_s")} for r in ok if r.get("p50_s")]

    def draw(ax, model: str, rows: list[dict]) -> None:
        _grouped_bars(ax, rows, "p50_s", style, whisker="longest_s")
        ax.set(ylabel="seconds per file, end to end", title=f"{model}: time per file (bar: median file, "
                                                             "whisker: longest file)")

    return _per_model_figure(sut, timed, path, draw, style.bar_legend, width=7.0)


def plot_memory(sut: str, rows: list[dict], style: Style, path: Path) -> Path:
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    measured = [r for r in rows if r.get("peak_rss_mib") or r.get("container_peak_mib")]
    panels = (("peak_rss_mib", "peak RSS of the engine process (time -v)"),
              ("container_peak_mib", "container peak (cgroup, page cache incl., cold start)"))
    for ax, (key, title) in zip(axes, panels):
        _grouped_bars(ax, [r for r in measured if r.get(key)], key, style)
        ax.set(ylabel="MiB", title=title)
    if measured:
        style.bar_legend(axes[1], measured)
    fig.suptitle(f"{sut}: memory")
    _save(fig, path)
    return path


def plot_wer_vs_speed(sut: str, ok: list[dict], style: Style, path: Path) -> Path:
    """One panel per model (a front never mixes models); the front joins the rows within the gate that no
    other such row beats on both speed and WER."""
    from matplotlib.lines import Line2D

    key = "wer" if any(r.get("wer") is not None for r in ok) else "wer_vs_baseline"

    def draw(ax, model: str, rows: list[dict]) -> None:
        for r in rows:
            ax.plot([1 / r["rtf"]], [100 * r[key]], **style.point(r))
            ax.annotate(f"{r['cores']}c", (1 / r["rtf"], 100 * r[key]), fontsize=7, xytext=(4, 3),
                        textcoords="offset points")
        front = model_fronts(rows, key).get(model)
        if front:  # by RTFx, rising: left of each point, its WER is the best the front offers
            ax.step([1 / x for x, _ in front[::-1]], [y for _, y in front[::-1]], where="pre", color="grey",
                    linestyle=":")
        ax.set(xlabel="RTFx (audio time / processing time; higher is faster)",
               ylabel=f"{'WER' if key == 'wer' else 'WER against the baseline'} %", title=f"{model}: speed vs accuracy")
        ax.grid(alpha=0.3)

    def legend(ax, rows: list[dict]) -> None:
        style.legend(ax, rows, [Line2D([], [], color="grey", linestyle=":", label="front (rows within the gate)")])

    return _per_model_figure(sut, [r for r in ok if r.get(key) is not None], path, draw, legend)


def model_fronts(rows: list[dict], key: str = "wer") -> dict[str, list[tuple[float, float]]]:
    """Per model, the (RTF, WER %) points of the rows within the gate that no other beats on both."""
    return {model: pareto_front([(r["rtf"], 100 * r[key]) for r in within_gate(group)
                                 if r.get("rtf") and r.get(key) is not None])
            for model, group in _by_model(rows).items()}


def plot_sut(sut: str, rows: list[dict], out_dir: Path) -> dict[str, Path]:
    ok = _ok(rows)
    style = Style(rows)
    paths = {name: out_dir / f"{sut}-{name}.png" for name in PLOTS}
    plot_scaling(sut, ok, style, paths["rtf_vs_cores"])
    plot_file_times(sut, ok, style, paths["latency"])
    plot_memory(sut, rows, style, paths["memory"])
    plot_wer_vs_speed(sut, ok, style, paths["wer_vs_rtf"])
    return paths


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points no other point beats on both speed (lower RTF) and accuracy (lower WER), by RTF."""
    front, best = [], float("inf")
    for x, y in sorted(points):
        if y < best:
            front.append((x, y))
            best = y
    return front


def plot_profile(csv_path: Path, out: Path, title: str, top: int = 15) -> Path:
    """The top operators of an `ort --profile` run (ort_profile_ops.csv) as horizontal bars."""
    import csv

    rows = list(csv.DictReader(open(csv_path)))[:top][::-1]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(rows) + 1.5))
    ax.barh([f"{r['session']}: {r['op']}" for r in rows], [float(r["share_pct"]) for r in rows])
    ax.set(xlabel="share of kernel time, %", title=title)
    _save(fig, out)
    return out


def plot_across_suts(rows: list[dict], out: Path) -> Path:
    plt = _pyplot()
    labels = sorted({cell_label(r["cell"], r["cores"]) for r in rows})
    suts = sorted({r["sut"] for r in rows})
    width = 0.8 / len(suts)
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(labels) + 2), 4.5))
    colours = [PALETTE[i % len(PALETTE)] for i in range(len(suts))]
    for i, sut in enumerate(suts):
        values = {cell_label(r["cell"], r["cores"]): r["audio_h_per_core_h"] for r in rows if r["sut"] == sut}
        xs = [j + (i - (len(suts) - 1) / 2) * width for j, label in enumerate(labels) if label in values]
        ax.bar(xs, [values[label] for label in labels if label in values], width, label=sut, color=colours[i])
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=7)
    ax.set(ylabel="audio hours per core-hour (higher is cheaper)", title="Across SUTs")
    ax.legend(**LEGEND)
    _save(fig, out)
    return out
class PlotsExporter:
    name = "plots"

    def export(self, report) -> list[Path]:
        from engines.ort.profile import PROFILE_CSV

        written = []
        for sut in report.suts:
            report.plots[sut] = plot_sut(sut, [r for r in report.rows if r["sut"] == sut], report.results / "plots")
            # a run with `-- --profile`: its operator profile, beside the other plots (the last round's)
            for csv_path in sorted((report.results / sut).glob(f"container_*/*/round-*/{PROFILE_CSV}")):
                cell, shape = csv_path.parent.parent.name, csv_path.parent.parent.parent.name
                name = f"profile {cell} {shape}"
                report.plots[sut][name] = plot_profile(
                    csv_path, report.results / "plots" / f"{sut}-profile-{cell}-{shape}.png",
                    f"{cell}, {shape}: onnxruntime operators by kernel time")
            written += list(report.plots[sut].values())
        ok = [r for r in report.rows if r["status"] == "ok" and r.get("audio_h_per_core_h")]
        if len({r["sut"] for r in ok}) > 1:  # a fleet: audio hours per core-hour, SUTs side by side
            path = report.results / "plots" / "fleet-audio_h_per_core_h.png"
            report.plots[""] = {"across SUTs": plot_across_suts(ok, path)}
            written.append(path)
        return written
