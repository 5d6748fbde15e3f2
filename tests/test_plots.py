"""The report's charts: one colour per engine, one marker per precision, gate failures hollow, a front per
model of the rows within the gate, legends outside the axes."""
import pytest

from harness.report import plots

ENGINES = {"ort": ("fp32", "int8"), "faster-whisper": ("fp32", "int8"), "openai-whisper": ("fp32",),
           "hf": ("fp32",), "whisper-cpp": ("f16", "q8_0"), "whisper-cpp-native": ("f16", "q8_0"),
           "openvino": ("fp32", "int8", "bf16")}


def row(engine, precision, cores=1, model="tiny.en", rtf=0.05, wer=0.10, gate="pass", batch=1):
    cell = f"{engine}-{model}-{precision}" + (f"-batch{batch}" if batch > 1 else "")
    return {"sut": "box", "cell": cell, "engine": engine, "model": model, "variant": precision,
            "precision": precision, "cores": cores, "status": "ok", "rtf": rtf, "rtf_ci_low": rtf * 0.95,
            "rtf_ci_high": rtf * 1.05, "wer": wer, "wer_vs_baseline": 0.01, "accuracy_gate": gate, "batch": batch,
            "p50_s": 60 * rtf, "max_file_s": 200 * rtf, "peak_rss_mib": 500.0, "container_peak_mib": 700.0}


def flat(points):
    return [v for point in points for v in point]


def default_rows():
    """The default comparison's 13 variants at 1 and 2 cores, openvino int8 failing the gate."""
    return [row(e, p, cores=c, rtf=0.02 * (i + 1) / c, wer=0.12 + 0.01 * (e == "openvino"),
                gate="FAIL" if (e, p) == ("openvino", "int8") else "pass")
            for i, (e, p) in enumerate((e, p) for e, ps in ENGINES.items() for p in ps) for c in (1, 2)]


def test_every_engine_has_its_own_colour_and_every_precision_its_marker():
    style = plots.Style(default_rows())
    colours = {e: style.colour(row(e, "fp32")) for e in ENGINES}
    assert len(set(colours.values())) == len(ENGINES) == 7
    assert style.colour(row("ort", "int8", cores=2)) == colours["ort"]  # a colour follows the engine alone
    precisions = ("fp32", "int8", "f16", "q8_0", "bf16", "q8-b128", "q4-b32")  # the last two: discover's builds
    style = plots.Style([row("ort", p) for p in precisions])
    markers = {p: style.marker(row("ort", p)) for p in precisions}
    assert len(set(markers.values())) == len(markers)
    unknown = plots.Style([row(f"engine{i}", "fp32") for i in range(12)])
    assert len({unknown.colour(row(f"engine{i}", "fp32")) for i in range(12)}) == 12


def test_a_row_that_fails_the_gate_is_hollow_and_stays_off_the_front():
    rows = [row("ort", "int8", rtf=0.02, wer=0.30, gate="FAIL"), row("ort", "fp32", rtf=0.05, wer=0.10),
            row("openai-whisper", "fp32", rtf=0.10, wer=0.09, gate="reference"),
            row("hf", "fp32", rtf=0.20, wer=0.11)]
    style = plots.Style(rows)
    assert style.point(rows[0])["markerfacecolor"] == "none"
    assert style.point(rows[1])["markerfacecolor"] == style.colour(rows[1])
    assert flat(plots.model_fronts(rows)["tiny.en"]) == pytest.approx([0.05, 10.0, 0.10, 9.0])
    ungated = [dict(r, accuracy_gate=None) for r in rows]  # no reference run: nothing to gate against
    assert plots.model_fronts(ungated)["tiny.en"][0] == pytest.approx((0.02, 30.0))


def test_the_front_never_mixes_models():
    rows = [row("ort", "int8", model="tiny.en", rtf=0.02, wer=0.14), row("ort", "int8", model="base", rtf=0.05,
                                                                          wer=0.10),
            row("ort", "fp32", model="base", rtf=0.08, wer=0.099), row("ort", "fp32", model="tiny.en", rtf=0.03,
                                                                       wer=0.139)]
    fronts = plots.model_fronts(rows)
    assert sorted(fronts) == ["base", "tiny.en"]
    assert flat(fronts["base"]) == pytest.approx([0.05, 10.0, 0.08, 9.9])
    assert flat(fronts["tiny.en"]) == pytest.approx([0.02, 14.0, 0.03, 13.9])


@pytest.mark.parametrize("value,low,high,expected", [(1.0, 0.9, 1.2, (0.1, 0.2)), (1.0, 1.1, 1.3, (0.0, 0.3)),
                                                     (1.0, 0.7, 0.95, (0.3, 0.0)), (1.0, None, None, (0.0, 0.0))])
def test_an_interval_that_misses_the_point_gives_a_zero_whisker_not_a_negative_one(value, low, high, expected):
    assert plots.interval_error(value, low, high) == pytest.approx(expected)


def test_the_charts_render_with_their_legends_outside_the_axes(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    legends = []
    savefig = plt.Figure.savefig

    def record(fig, *args, **kwargs):
        for ax in fig.axes:
            if ax.get_legend():
                fig.canvas.draw()
                box = ax.get_legend().get_window_extent().transformed(ax.transAxes.inverted())
                legends.append(box.x0)
        return savefig(fig, *args, **kwargs)

    monkeypatch.setattr(plt.Figure, "savefig", record)
    rows = default_rows() + [row("ort", "int8", model="base", rtf=0.06), row("ort", "int8", batch=8, rtf=0.01)]
    paths = plots.plot_sut("box", rows, tmp_path)
    assert sorted(paths) == sorted(plots.PLOTS)
    for path in paths.values():
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, path
    assert len(legends) == 4 and min(legends) > 1.0  # each legend starts right of its axes
