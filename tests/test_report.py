"""Reports from fixture result folders: ok, partial, OOM, interrupted and failed-gate runs."""
import csv
import hashlib
import json

import pytest

from conftest import run_cli
from harness.orchestrate import backup_cell
from harness.report import write_report
from harness.report.plots import pareto_front
from harness.report.results_md import BEGIN, END

AUDIO_S = 600.0
DECODING = {"language": "en", "task": "transcribe", "beam_size": 1, "temperature": 0.0, "timestamps": True,
            "condition_on_previous_text": True, "max_new_tokens": None, "vad": False, "batch_size": 1}


def make_cell(results, shape, cell, status="ok", processing_s=None, wer=None, run=True, decoding=None,
              convention="openai", failures=0, summary_status=None):
    engine, model, variant = cell.rsplit("-", 2)[0].replace("-tiny.en", ""), "tiny.en", cell.rsplit("-", 1)[1]
    cores = int(shape.split("_")[1].split("c")[0])
    d = results / "box" / shape / cell
    d.mkdir(parents=True)
    if processing_s is not None:
        summary = {"engine": engine, "model": model, "variant": variant, "precision": variant, "threads": cores,
                   "cpuset": list(range(cores)), "status": summary_status or status, "n_files": 10,
                   "n_ok": 10 - failures, "failures": failures, "convention": convention,
                   "decoding": {**DECODING, **(decoding or {})}, "total_audio_s": AUDIO_S,
                   "total_processing_s": processing_s, "rtf": processing_s / AUDIO_S, "rtfx": AUDIO_S / processing_s,
                   "model_load_s": 0.5, "end_to_end_s": {"p50": processing_s / 10, "p95": processing_s / 5,
                                                          "mean": processing_s / 10}}
        (d / "inference_summary.json").write_text(json.dumps(summary))
        (d / "inference_per_file.json").write_text("[]")
    if run:
        record = {"engine": engine, "model": model, "variant": variant, "cores": cores, "memory_gb": 4.0,
                  "cpuset": f"0-{cores - 1}" if cores > 1 else "0", "status": status,
                  "error": "killed by the kernel: out of memory under the container's limit" if status == "oom" else None,
                  "host_wall_s": (processing_s or 1) + 3, "time_v": {"max_rss_mb": 700.0, "elapsed_s": 2.0},
                  "cgroup_peak_bytes": 900 * 2**20}
        (d / "run.json").write_text(json.dumps(record))
    if wer is not None:
        (d / "metrics.json").write_text(json.dumps({"vs_reference": {"wer": wer, "cer": wer / 2},
                                                    "vs_baseline": {"wer": 0.01}}))
    return d


@pytest.fixture
def results(tmp_path):
    r = tmp_path / "results"
    for shape, scale in (("container_1c4g", 1.0), ("container_2c4g", 0.6)):
        make_cell(r, shape, "openai-whisper-tiny.en-fp32", processing_s=100 * scale, wer=0.10)
    make_cell(r, "container_1c4g", "ort-tiny.en-fp32", processing_s=50, wer=0.10)
    make_cell(r, "container_2c4g", "ort-tiny.en-fp32", processing_s=30, wer=0.10)
    make_cell(r, "container_1c4g", "ort-tiny.en-int8", processing_s=30, wer=0.12)   # below the gate
    make_cell(r, "container_2c4g", "ort-tiny.en-int8", processing_s=20, wer=0.12)
    make_cell(r, "container_2c4g", "faster-whisper-tiny.en-int8", status="oom")       # run.json only
    make_cell(r, "container_1c4g", "hf-tiny.en-fp32", status="partial", processing_s=90, wer=0.15, failures=1,
              convention="hf-pipeline", decoding={"timestamps": False})
    # The harness was stopped mid-run: the engine's files exist, run.json does not.
    make_cell(r, "container_1c4g", "faster-whisper-tiny.en-fp32", processing_s=10, run=False,
              summary_status="running")
    # An older run kept under backups/ is never part of the tables.
    old = make_cell(r, "container_1c4g", "ort-tiny.en-fp16", processing_s=1)
    (r / "box" / "backups" / "20260101-000000" / "container_1c4g").mkdir(parents=True)
    old.rename(r / "box" / "backups" / "20260101-000000" / "container_1c4g" / old.name)
    return r


def rows_by(rows, cell, cores):
    return next(r for r in rows if r["cell"] == cell and r["cores"] == cores)


def test_tables_hold_every_run_with_derived_columns(results, tmp_path):
    rows = write_report(results, tmp_path / "RESULTS.md")
    assert len(rows) == 9
    ort2 = rows_by(rows, "ort-tiny.en-fp32", 2)
    assert ort2["speedup"] == pytest.approx(50 / 30) and ort2["efficiency"] == pytest.approx(50 / 30 / 2)
    assert ort2["audio_h_per_core_h"] == pytest.approx(AUDIO_S / 30 / 2)
    assert ort2["accuracy_gate"] == "pass"
    assert rows_by(rows, "ort-tiny.en-int8", 1)["accuracy_gate"] == "FAIL"      # 0.88 < 0.99 * 0.90
    assert rows_by(rows, "openai-whisper-tiny.en-fp32", 1)["accuracy_gate"] == "baseline"
    assert rows_by(rows, "faster-whisper-tiny.en-int8", 2)["status"] == "oom"
    assert rows_by(rows, "faster-whisper-tiny.en-fp32", 1)["status"] == "incomplete"
    hf = rows_by(rows, "hf-tiny.en-fp32", 1)
    assert hf["decoding_diff"] == "convention=hf-pipeline; timestamps=False" and hf["status"] == "partial"
    assert rows_by(rows, "ort-tiny.en-fp32", 1)["decoding_diff"] == ""

    with open(results / "box" / "container_2c4g" / "summary_table.csv") as f:
        table = list(csv.DictReader(f))
    assert [r["cell"] for r in table] == ["faster-whisper-tiny.en-int8", "openai-whisper-tiny.en-fp32",
                                          "ort-tiny.en-fp32", "ort-tiny.en-int8"]
    oom = table[0]
    assert oom["status"] == "oom" and oom["rtf"] == "" and "out of memory" in oom["error"]
    assert float(oom["container_peak_mb"]) == 900 and float(oom["peak_rss_mb"]) == 700
    md = (results / "box" / "container_1c4g" / "summary_table.md").read_text()
    assert "accuracy gate" in md.splitlines()[2]
    assert "FAIL" in md and "incomplete" in md and "hf-pipeline" in md
    with open(results / "merged.csv") as f:
        merged = list(csv.DictReader(f))
    assert len(merged) == 9 and {r["sut"] for r in merged} == {"box"}
    assert not any("fp16" in r["cell"] for r in merged)  # the backup is not a result


def test_results_md_is_idempotent_and_keeps_hand_text(results, tmp_path):
    md = tmp_path / "RESULTS.md"
    md.write_text(f"# Our notes\n\nWritten by hand.\n\n{BEGIN}\nold\n{END}\n\nFooter by hand.\n")
    write_report(results, md)
    first = md.read_text()
    assert first.startswith("# Our notes\n\nWritten by hand.\n\n") and first.endswith("\n\nFooter by hand.\n")
    assert "old" not in first and "## box" in first
    assert "Fastest at 1 core with accuracy within the gate: **ort-tiny.en-fp32**" in first
    assert "Cheapest per core: **ort-tiny.en-fp32** at 1 core, 12.0 audio hours" in first
    assert "faster-whisper-tiny.en-int8 at 2 cores: oom" in first
    plots = sorted((results / "plots").glob("*.png"))
    stamps = {p: p.stat().st_mtime_ns for p in plots}
    write_report(results, md)
    assert md.read_text() == first
    assert {p: p.stat().st_mtime_ns for p in plots} == stamps  # nothing rewritten


def test_results_md_without_markers_gets_a_block_appended(results, tmp_path):
    md = tmp_path / "RESULTS.md"
    md.write_text("Hand-written only.\n")
    write_report(results, md)
    text = md.read_text()
    assert text.startswith("Hand-written only.\n") and text.count(BEGIN) == 1 and text.count(END) == 1


def test_plots_are_non_empty_pngs_linked_from_results_md(results, tmp_path):
    md = tmp_path / "RESULTS.md"
    write_report(results, md)
    for name in ("rtf_vs_cores", "latency", "memory", "wer_vs_rtf"):
        path = results / "plots" / f"box-{name}.png"
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, name
        assert f"(results/plots/box-{name}.png)" in md.read_text()


def test_pareto_front_keeps_only_undominated_points():
    assert pareto_front([(0.1, 12.0), (0.05, 15.0), (0.2, 10.0), (0.3, 11.0), (0.04, 20.0)]) == \
        [(0.04, 20.0), (0.05, 15.0), (0.1, 12.0), (0.2, 10.0)]


def tree_digest(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_rerun_backup_loses_nothing(results, tmp_path):
    sut = results / "box"
    cell = sut / "container_1c4g" / "ort-tiny.en-fp32"
    before = tree_digest(cell)
    moved = backup_cell(cell, sut, "20261121-120000")
    assert not cell.exists() and tree_digest(moved) == before
    assert moved == sut / "backups" / "20261121-120000" / "container_1c4g" / "ort-tiny.en-fp32"
    older = tree_digest(sut / "backups" / "20260101-000000")
    write_report(results, tmp_path / "RESULTS.md")
    assert tree_digest(sut / "backups" / "20260101-000000") == older
    assert tree_digest(moved) == before


def test_report_command_on_empty_results(tmp_path):
    md = tmp_path / "RESULTS.md"
    proc = run_cli("-m", "harness", "report", "--results", str(tmp_path / "none"), "--results-md", str(md))
    assert proc.returncode == 0, proc.stderr
    assert "No results yet" in md.read_text()
