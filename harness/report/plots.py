"""Exporter: PNG charts per SUT under results/plots/: scaling (with 95 % interval bars), latency, memory,
and the speed/accuracy Pareto front."""
from __future__ import annotations

import io
from pathlib import Path

from ..files import write_atomic

PLOTS = ("rtf_vs_cores", "latency", "memory", "wer_vs_rtf")


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


def _by_cell(rows):
    cells: dict[str, list[dict]] = {}
    for r in rows:
        cells.setdefault(r["cell"], []).append(r)
    return {k: sorted(v, key=lambda r: r["cores"]) for k, v in sorted(cells.items())}


def _grouped_bars(ax, rows, value, low=None, high=None):
    """One group of bars per core count, one bar per engine variant; optional whiskers low..high."""
    cells = sorted({r["cell"] for r in rows})
    cores = sorted({r["cores"] for r in rows})
    width = 0.8 / max(len(cells), 1)
    for i, cell in enumerate(cells):
        xs, ys, errs = [], [], [[], []]
        for j, c in enumerate(cores):
            row = next((r for r in rows if r["cell"] == cell and r["cores"] == c and r.get(value)), None)
            if row is None:
                continue
            xs.append(j + (i - (len(cells) - 1) / 2) * width)
            ys.append(row[value])
            if high:
                errs[0].append(0.0)
                errs[1].append(max((row.get(high) or row[value]) - row[value], 0.0))
        ax.bar(xs, ys, width, label=cell, yerr=errs if high else None, capsize=3)
    ax.set_xticks(range(len(cores)), [f"{c} cores" for c in cores])


def plot_sut(sut: str, rows: list[dict], out_dir: Path) -> dict[str, Path]:
    plt = _pyplot()
    ok = _ok(rows)
    paths = {name: out_dir / f"{sut}-{name}.png" for name in PLOTS}

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for cell, group in _by_cell(ok).items():
        low = [r["rtf"] - (r.get("rtf_ci_low") or r["rtf"]) for r in group]
        high = [(r.get("rtf_ci_high") or r["rtf"]) - r["rtf"] for r in group]
        ax.errorbar([r["cores"] for r in group], [r["rtf"] for r in group], yerr=[low, high], marker="o",
                    capsize=3, label=cell)
    ax.set(xlabel="cores (logical CPUs = threads)",
           ylabel="RTF, median of rounds (bars: 95 % interval)", title=f"{sut}: scaling with cores")
    ax.set_xticks(sorted({r["cores"] for r in ok}) or [1])
    ax.grid(alpha=0.3)
    if ok:
        ax.legend(fontsize=8)
    _save(fig, paths["rtf_vs_cores"])

    fig, ax = plt.subplots(figsize=(8, 4.5))
    _grouped_bars(ax, [r for r in ok if r.get("p50_s")], "p50_s", high="p95_s")
    ax.set(ylabel="end-to-end latency per file, s (bar p50, whisker p95)", title=f"{sut}: latency per file")
    if ok:
        ax.legend(fontsize=8)
    _save(fig, paths["latency"])

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    measured = [r for r in rows if r.get("peak_rss_mib") or r.get("container_peak_mib")]
    _grouped_bars(axes[0], [r for r in measured if r.get("peak_rss_mib")], "peak_rss_mib")
    axes[0].set(ylabel="MiB", title="peak RSS of the engine process (time -v)")
    _grouped_bars(axes[1], [r for r in measured if r.get("container_peak_mib")], "container_peak_mib")
    axes[1].set(ylabel="MiB", title="container peak (cgroup, page cache incl., cold start)")
    if measured:
        axes[1].legend(fontsize=8)
    fig.suptitle(f"{sut}: memory")
    _save(fig, paths["memory"])

    fig, ax = plt.subplots(figsize=(7, 4.5))
    key = "wer" if any(r["wer"] is not None for r in ok) else "wer_vs_baseline"
    points = [(r["rtf"], 100 * r[key], r) for r in ok if r.get(key) is not None]
    for cell, group in _by_cell([p[2] for p in points]).items():
        ax.scatter([r["rtf"] for r in group], [100 * r[key] for r in group], label=cell)
        for r in group:
            ax.annotate(f"{r['cores']}c", (r["rtf"], 100 * r[key]), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
    front = pareto_front([(x, y) for x, y, _ in points])
    if front:
        ax.step([p[0] for p in front], [p[1] for p in front], where="post", color="grey", linestyle="--",
                label="Pareto front")
    ax.set(xlabel="RTF (lower is faster)", ylabel=f"{'WER' if key == 'wer' else 'WER vs baseline'} %",
           title=f"{sut}: speed vs accuracy")
    ax.grid(alpha=0.3)
    if points:
        ax.legend(fontsize=8)
    _save(fig, paths["wer_vs_rtf"])
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
    labels = sorted({f"{r['cell']}@{r['cores']}c" for r in rows})
    suts = sorted({r["sut"] for r in rows})
    width = 0.8 / len(suts)
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(labels) + 2), 4.5))
    for i, sut in enumerate(suts):
        values = {f"{r['cell']}@{r['cores']}c": r["audio_h_per_core_h"] for r in rows if r["sut"] == sut}
        xs = [j + (i - (len(suts) - 1) / 2) * width for j, label in enumerate(labels) if label in values]
        ax.bar(xs, [values[label] for label in labels if label in values], width, label=sut)
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=7)
    ax.set(ylabel="audio hours per core-hour (higher is cheaper)", title="Across SUTs")
    ax.legend(fontsize=8)
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
