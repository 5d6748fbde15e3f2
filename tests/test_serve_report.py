"""The capacity report from serve.json records: rows, answer lines, the energy source on every row, the plot."""
import json

from harness.report.capacity import CAPACITY_CSV, load_cells, write_capacity_report


def _point(qps, p99, ok, audio_s_per_s=10.0, source="estimate (3 W per busy CPU, TDP x load)", foreign=0.01):
    return {"test": f"server-{qps:g}", "target_qps": qps, "meets_bound": ok, "status": "ok",
            "foreign_busy_share": foreign,
            "loadgen": {"latency_ms": {"p50": p99 / 2, "p90": p99 * 0.8, "p99": p99}, "validity": "INVALID"},
            "sut": {"audio_s_per_s": audio_s_per_s}, "energy": {"wh_per_audio_hour": 0.5 * qps, "source": source}}


def _record(engine, cores, points, audit="pass", wer=0.10):
    best = max((p for p in points if p["meets_bound"]), key=lambda p: p["target_qps"], default=None)
    return {"engine": engine, "variant": "int8", "model": "tiny.en", "sut": "box", "cores": cores,
            "layout": {"workers": 1, "threads": cores, "batch": 1, "name": f"w1t{cores}"},
            "settings": {"latency_bound_ms": 5000, "duration_ms": 20000, "min_queries": 10, "mlperf": False},
            "offline": {"status": "ok", "loadgen": {"samples_per_second": 2.0}, "sut": {"audio_s_per_s": 40.0},
                        "energy": {"wh_per_audio_hour": 0.3, "source": "estimate (3 W per busy CPU, TDP x load)"}},
            "accuracy": {"wer": wer}, "audit": {"verdict": audit}, "capacity": best, "server_points": points}


def _write(root, name, record):
    path = root / "box" / "serving" / f"container_{record['cores']}c8g" / name / "serve.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(record))


def test_capacity_report_names_the_highest_audited_capacity_and_the_energy_source_on_every_row(tmp_path):
    _write(tmp_path, "ort-tiny.en-int8-w1t1", _record("ort", 1, [_point(1.2, 3000, True, foreign=0.4),
                                                                     _point(1.8, 9000, False)]))
    # faster at the bound, but its answers under load differed from its accuracy run's: never the answer
    _write(tmp_path, "fw-tiny.en-int8-w1t1", _record("faster-whisper", 1, [_point(1.6, 2000, True)], audit="FAIL"))
    # nothing met the bound: energy at its offline point, said so
    _write(tmp_path, "ort-tiny.en-int8-w1t2", _record("ort", 2, [_point(0.5, 8000, False)]))
    serving = tmp_path / "box" / "serving"
    assert len(load_cells(serving)) == 3
    md = write_capacity_report(serving).read_text()
    assert "- tiny.en, 1 core(s): highest capacity: ort int8 1x1, 1.200 QPS" in md
    assert "other processes used over 10 % of the CPUs during ort int8 1x1's capacity point" in md
    assert "- tiny.en, 2 core(s): no cell met the p99 bound" in md
    assert "least energy per audio hour: ort int8 1x1, 0.60 Wh at its server capacity point" in md
    rows = (serving / CAPACITY_CSV).read_text().splitlines()[1:]
    assert len(rows) == 3 and all("estimate" in r for r in rows)
    assert "1.2✓ 1.8✗" in md and "offline: no server capacity" in md
    assert (serving / "plots" / "capacity_latency_1c.png").stat().st_size > 0


def test_results_md_links_the_capacity_report_when_one_exists(tmp_path):
    """RESULTS.md carries the capacity answer and a link to capacity.md: beside a comparison's section, and
    for a SUT that only served; without a serving area it says nothing about capacity."""
    from results_fixture import make_cell

    from harness.report import write_report

    results = tmp_path / "results"
    make_cell(results, "container_1c4g", "ort-tiny.en-int8", rtf=0.05, wer=0.10, seed=1)
    md = tmp_path / "RESULTS.md"
    write_report(results, md)
    assert "## box" in md.read_text() and "capacity" not in md.read_text().lower()

    _write(results, "ort-tiny.en-int8-w1t1", _record("ort", 1, [_point(1.2, 3000, True), _point(1.8, 9000, False)]))
    record = _record("ort", 1, [_point(0.4, 2000, True)])
    path = results / "edge" / "serving" / "container_1c8g" / "ort-tiny.en-int8-w1t1" / "serve.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({**record, "sut": "edge"}))   # served, never compared
    write_report(results, md)
    text = md.read_text()
    box, edge = text.split("## box", 1)[1].split("## edge", 1)
    for section, qps, sut in ((box, "1.200", "box"), (edge, "0.400", "edge")):
        assert "### Serving capacity" in section
        assert f"- tiny.en, 1 core(s): highest capacity: ort int8 1x1, {qps} QPS" in section
        assert f"[capacity.md](results/{sut}/serving/capacity.md)" in section
    assert (results / "edge" / "serving" / "capacity.md").is_file()
