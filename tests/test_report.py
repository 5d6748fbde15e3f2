"""Reports from fixture result folders: rounds, spread, ties, one gate, like with like, scaling, partial
runs, applied settings, a clone without raw folders, and the regression compare."""
import csv
import hashlib
import shutil

import pytest
from results_fixture import OOM_ERROR, make_cell

from conftest import run_cli
from harness.report import build_report, write_report
from harness.report.plots import pareto_front
from harness.report.results_md import BEGIN, END
from harness.run.loop import backup_cell

C1, C2 = "container_1c4g", "container_2c4g"


@pytest.fixture
def results(tmp_path):
    r = tmp_path / "results"
    make_cell(r, C1, "openai-whisper-tiny.en-fp32", rtf=0.20, wer=0.10, seed=1)
    make_cell(r, C2, "openai-whisper-tiny.en-fp32", rtf=0.12, wer=0.10, seed=2)
    make_cell(r, C1, "ort-tiny.en-fp32", rtf=0.05, wer=0.10, seed=3)
    make_cell(r, C2, "ort-tiny.en-fp32", rtf=0.03, wer=0.10, seed=4)
    make_cell(r, C1, "ort-tiny.en-int8", rtf=0.02, wer=0.12, seed=5)          # fastest, but below the gate
    make_cell(r, C2, "ort-tiny.en-int8", rtf=0.015, wer=0.12, seed=6)
    make_cell(r, C2, "faster-whisper-tiny.en-int8", status="oom", rounds=1)    # run.json only
    make_cell(r, C1, "hf-tiny.en-fp32", status="partial", rtf=0.18, wer=0.15, failed_files=2, convention="hf-pipeline",
              applied={"max_new_tokens": "448 minus the prompt"}, notes=["clips under 30 s are padded"])
    # The harness died mid-run: the engine's files exist, run.json does not.
    make_cell(r, C1, "faster-whisper-tiny.en-fp32", status="running", rounds=1, run=False)
    old = make_cell(r, C1, "ort-tiny.en-fp16", rtf=0.001)                      # kept under backups/ only
    backup_cell(old, r / "box", "20260101-000000")
    return r


def rows_by(rows, cell, cores):
    return next(r for r in rows if r["cell"] == cell and r["cores"] == cores)


def test_rows_carry_rounds_spread_and_derived_columns(results, tmp_path):
    rows = write_report(results, tmp_path / "RESULTS.md")
    assert len(rows) == 9
    ort2 = rows_by(rows, "ort-tiny.en-fp32", 2)
    ort1 = rows_by(rows, "ort-tiny.en-fp32", 1)
    assert ort2["n_rounds"] == 3 and ort2["rtf"] == pytest.approx(0.03, rel=0.03)
    assert ort2["rtf_ci_low"] < ort2["rtf"] < ort2["rtf_ci_high"] and ort2["rtf_cv_pct"] < 5
    assert ort2["speedup"] == pytest.approx(ort1["rtf"] / ort2["rtf"]) and ort2["scaling_base"] == "1c"
    assert ort2["audio_h_per_core_h"] == pytest.approx(1 / ort2["rtf"] / 2)
    assert ort2["accuracy_gate"] == "pass" and ort2["wer_whisper"] == pytest.approx(0.09)
    assert rows_by(rows, "ort-tiny.en-int8", 1)["accuracy_gate"] == "FAIL"      # 0.88 < 0.99 * 0.90
    assert rows_by(rows, "openai-whisper-tiny.en-fp32", 1)["accuracy_gate"] == "baseline"
    assert rows_by(rows, "faster-whisper-tiny.en-int8", 2)["status"] == "oom"
    assert rows_by(rows, "faster-whisper-tiny.en-fp32", 1)["status"] == "incomplete"
    hf = rows_by(rows, "hf-tiny.en-fp32", 1)
    assert hf["status"] == "partial" and hf["speedup"] is None  # partial rows never enter scaling
    assert hf["decoding_diff"] == "convention=hf-pipeline; max_new_tokens=448 minus the prompt"
    assert "padded" in hf["notes"]
    assert ort1["decoding_diff"] == ""

    with open(results / "box" / C2 / "summary_table.csv") as f:
        table = list(csv.DictReader(f))
    assert [r["cell"] for r in table] == ["faster-whisper-tiny.en-int8", "openai-whisper-tiny.en-fp32",
                                          "ort-tiny.en-fp32", "ort-tiny.en-int8"]
    oom = table[0]
    assert oom["status"] == "oom" and oom["rtf"] == "" and OOM_ERROR in oom["error"]
    assert float(oom["container_peak_mib"]) == 900 and float(oom["peak_rss_mib"]) == 700
    md = (results / "box" / C1 / "summary_table.md").read_text()
    assert "RTF 95% low" in md and "WER % (Whisper normaliser)" in md and "MiB" in md
    assert "FAIL" in md and "incomplete" in md and "hf-pipeline" in md
    with open(results / "merged.csv") as f:
        merged = list(csv.DictReader(f))
    assert len(merged) == 9 and not any("fp16" in r["cell"] for r in merged)


def test_results_md_answers_with_the_gate_rule_and_keeps_hand_text(results, tmp_path):
    md = tmp_path / "RESULTS.md"
    md.write_text(f"# Our notes\n\nWritten by hand.\n\n{BEGIN}\nold\n{END}\n\nFooter by hand.\n")
    write_report(results, md)
    first = md.read_text()
    assert first.startswith("# Our notes\n\nWritten by hand.\n\n") and first.endswith("\n\nFooter by hand.\n")
    assert "\nold\n" not in first and "## box" in first
    assert "Accuracy gate: word accuracy against the references (whisper-bench-en normaliser) at least 99 % of " \
           "openai-whisper's complete run, WER 10.00 %." in first
    assert "Fastest at 1 core: **ort-tiny.en-fp32**" in first
    assert "against the runner-up openai-whisper-tiny.en-fp32@1c" in first
    assert "Cheapest per core-hour: **ort-tiny.en-fp32** at 1 core" in first
    assert "faster-whisper-tiny.en-int8 at 2 cores: oom" in first
    plots = sorted((results / "plots").glob("*.png"))
    stamps = {p: p.stat().st_mtime_ns for p in plots}
    write_report(results, md)
    assert md.read_text() == first
    assert {p: p.stat().st_mtime_ns for p in plots} == stamps  # nothing rewritten


def test_overlapping_intervals_are_a_tie_not_a_winner(tmp_path):
    r = tmp_path / "results"
    make_cell(r, C1, "ort-tiny.en-int8", rtf=0.0400, noise=0.05, seed=1)
    make_cell(r, C1, "faster-whisper-tiny.en-int8", rtf=0.0408, noise=0.05, seed=2)
    make_cell(r, C1, "openai-whisper-tiny.en-fp32", rtf=0.08, seed=3)
    md = tmp_path / "RESULTS.md"
    write_report(r, md)
    text = md.read_text()
    fastest = next(line for line in text.splitlines() if line.startswith("- Fastest at 1 core"))
    assert fastest.startswith("- Fastest at 1 core: no single winner: **")
    assert "ort-tiny.en-int8" in fastest and "faster-whisper-tiny.en-int8" in fastest and "is tied with" in fastest
    assert "openai-whisper" not in fastest
    assert "Cheapest per core-hour: no single winner" in text


def test_a_failed_baseline_at_one_shape_does_not_change_the_rule(tmp_path):
    r = tmp_path / "results"
    make_cell(r, C1, "openai-whisper-tiny.en-fp32", rtf=0.2, wer=0.10)
    make_cell(r, C2, "openai-whisper-tiny.en-fp32", status="timeout", rounds=1)
    for shape, rtf in ((C1, 0.05), (C2, 0.03)):
        make_cell(r, shape, "ort-tiny.en-int8", rtf=rtf, wer=0.105)
        make_cell(r, shape, "faster-whisper-tiny.en-int8", rtf=rtf * 1.5, wer=0.105)
    report = build_report(r, tmp_path / "RESULTS.md")
    gates = {(row["cell"], row["cores"]): row["accuracy_gate"] for row in report.rows}
    assert gates[("ort-tiny.en-int8", 1)] == gates[("ort-tiny.en-int8", 2)] == "pass"
    assert gates[("faster-whisper-tiny.en-int8", 2)] == "pass"


def test_without_a_baseline_the_gate_uses_the_most_accurate_complete_run(tmp_path):
    r = tmp_path / "results"
    make_cell(r, C1, "ort-tiny.en-fp32", rtf=0.05, wer=0.10)
    make_cell(r, C1, "ort-tiny.en-int8", rtf=0.01, wer=0.60)      # fast and wrong: never named fastest
    md = tmp_path / "RESULTS.md"
    write_report(r, md)
    text = md.read_text()
    assert "of the most accurate complete run (ort-tiny.en-fp32; no complete openai-whisper run)" in text
    assert "Fastest at 1 core: **ort-tiny.en-fp32**" in text


def test_only_like_is_compared_with_like(tmp_path):
    r = tmp_path / "results"
    make_cell(r, C1, "ort-tiny.en-fp32", rtf=0.05)
    make_cell(r, C1, "ort-base-fp32", rtf=0.12, model="base", seed=2)
    make_cell(r, C1, "faster-whisper-tiny.en-fp32", rtf=0.04, decoding={"beam_size": 5}, seed=3)
    md = tmp_path / "RESULTS.md"
    write_report(r, md)
    text = md.read_text()
    assert text.count("### Answer ") == 3
    assert "Compared: model base" in text and "Compared: model tiny.en" in text
    answers = [a.split("### All runs")[0] for a in text.split("### Answer ")[1:]]
    beam5 = next(a for a in answers if "beam_size=5" in a)
    tiny_beam1 = next(a for a in answers if "model tiny.en" in a and "beam_size=1" in a)
    # the beam-5 row is in a comparison of its own, so the beam-1 answer names ort, not the faster beam-5 row
    assert "Fastest at 1 core: **faster-whisper-tiny.en-fp32**" in beam5
    assert "Fastest at 1 core: **ort-tiny.en-fp32**" in tiny_beam1 and "faster-whisper" not in tiny_beam1


def test_a_failed_fewest_cores_run_is_named_as_the_scaling_base(tmp_path):
    r = tmp_path / "results"
    make_cell(r, C1, "ort-tiny.en-fp32", status="oom", rounds=1)
    make_cell(r, C2, "ort-tiny.en-fp32", rtf=0.03)
    make_cell(r, "container_4c4g", "ort-tiny.en-fp32", rtf=0.02)
    rows = build_report(r, tmp_path / "R.md").rows
    assert rows_by(rows, "ort-tiny.en-fp32", 4)["scaling_base"] == "2c"
    assert rows_by(rows, "ort-tiny.en-fp32", 4)["speedup"] == pytest.approx(1.5, rel=0.05)


def test_report_on_a_clone_without_raw_folders_changes_nothing(results, tmp_path):
    md = tmp_path / "RESULTS.md"
    write_report(results, md)
    before = tree_digest(results), md.read_text()
    clone = tmp_path / "clone"
    shutil.copytree(results, clone)
    for raw in list(clone.rglob("round-*")):
        shutil.rmtree(raw)
    shutil.rmtree(clone / "box" / "backups")
    md2 = tmp_path / "RESULTS2.md"
    md2.write_text(md.read_text())
    write_report(clone, md2)
    kept = {k: v for k, v in before[0].items() if "round-" not in k and "backups" not in k}
    assert tree_digest(clone) == kept
    assert md2.read_text().replace("(clone/", "(results/") == before[1]


def test_compare_gives_verdicts(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    make_cell(old, C1, "ort-tiny.en-fp32", rtf=0.05, seed=1)
    make_cell(new, C1, "ort-tiny.en-fp32", rtf=0.04, seed=2)               # 20 % faster
    make_cell(old, C1, "faster-whisper-tiny.en-fp32", rtf=0.05, noise=0.02, seed=3)
    make_cell(new, C1, "faster-whisper-tiny.en-fp32", rtf=0.0502, noise=0.02, seed=4)
    make_cell(old, C1, "hf-tiny.en-fp32", rtf=0.10, seed=5)
    make_cell(new, C1, "hf-tiny.en-fp32", rtf=0.13, seed=6)
    proc = run_cli("-m", "harness", "compare", str(old / "box"), str(new / "box"), "--out", str(tmp_path / "cmp"))
    assert proc.returncode == 0, proc.stderr
    with open(tmp_path / "cmp.csv") as f:
        verdicts = {r["cell"]: r["verdict"] for r in csv.DictReader(f)}
    assert verdicts == {"ort-tiny.en-fp32": "faster", "faster-whisper-tiny.en-fp32": "no significant change",
                        "hf-tiny.en-fp32": "slower"}
    assert "new/old time" in (tmp_path / "cmp.md").read_text()


def test_plots_are_non_empty_pngs_linked_from_results_md(results, tmp_path):
    md = tmp_path / "RESULTS.md"
    write_report(results, md)
    for name in ("rtf_vs_cores", "latency", "memory", "wer_vs_rtf"):
        data = (results / "plots" / f"box-{name}.png").read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, name
        assert f"(results/plots/box-{name}.png)" in md.read_text()


def test_pareto_front_keeps_only_undominated_points():
    assert pareto_front([(0.1, 12.0), (0.05, 15.0), (0.2, 10.0), (0.3, 11.0), (0.04, 20.0)]) == \
        [(0.04, 20.0), (0.05, 15.0), (0.1, 12.0), (0.2, 10.0)]


def test_report_command_on_empty_results(tmp_path):
    md = tmp_path / "RESULTS.md"
    proc = run_cli("-m", "harness", "report", "--results", str(tmp_path / "none"), "--results-md", str(md))
    assert proc.returncode == 0, proc.stderr
    assert "No results yet" in md.read_text()


def tree_digest(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_results_folder_elsewhere_gets_its_own_results_md(results):
    from harness.layout import RESULTS_MD

    before = RESULTS_MD.read_bytes()
    write_report(results)
    assert (results / "RESULTS.md").read_text().count("## box") == 1
    assert RESULTS_MD.read_bytes() == before


def test_a_throughput_cell_is_its_own_comparison(tmp_path):
    r = tmp_path / "results"
    make_cell(r, C1, "ort-tiny.en-int8", rtf=0.05)
    make_cell(r, C1, "ort-tiny.en-int8-batch8", rtf=0.03, decoding={"batch_size": 8}, variant="int8", seed=2)
    make_cell(r, C1, "faster-whisper-tiny.en-int8-batch8", rtf=0.02, decoding={"batch_size": 8}, variant="int8",
              seed=3)
    md = tmp_path / "RESULTS.md"
    write_report(r, md)
    answers = [a.split("### All runs")[0] for a in md.read_text().split("### Answer ")[1:]]
    assert len(answers) == 2
    batched = next(a for a in answers if "throughput at batch size 8" in a)
    assert "Fastest at 1 core: **faster-whisper-tiny.en-int8-batch8**" in batched
    latency = next(a for a in answers if "throughput" not in a)
    assert "Fastest at 1 core: **ort-tiny.en-int8**" in latency
