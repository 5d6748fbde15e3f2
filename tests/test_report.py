"""Reports from fixture result folders: runs as replicates, ties, one declared gate, like with like, scaling,
partial runs, applied settings, answer.json, a clone without raw folders."""
import csv
import hashlib
import json
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


def answer_block(text, n=None):
    blocks = text.split("### Answer")[1:]
    return blocks if n is None else blocks[n]


def line(text, start):
    return next(ln for ln in text.splitlines() if ln.startswith(start))


def test_rows_carry_runs_intervals_and_derived_columns(results, tmp_path):
    rows = write_report(results, tmp_path / "RESULTS.md").rows
    assert len(rows) == 9
    ort2 = rows_by(rows, "ort-tiny.en-fp32", 2)
    ort1 = rows_by(rows, "ort-tiny.en-fp32", 1)
    assert ort2["n_rounds"] == 3 and ort2["rtf"] == pytest.approx(0.03, rel=0.03)
    assert ort2["rtf_ci_low"] < ort2["rtf"] < ort2["rtf_ci_high"] and ort2["rtf_cv_pct"] < 5
    assert ort2["speedup"] == pytest.approx(ort1["rtf"] / ort2["rtf"]) and ort2["scaling_base"] == "1c"
    assert ort2["audio_h_per_core_h"] == pytest.approx(1 / ort2["rtf"] / 2)
    assert ort2["accuracy_gate"] == "pass" and ort2["wer_whisper"] == pytest.approx(0.09)
    assert rows_by(rows, "ort-tiny.en-int8", 1)["accuracy_gate"] == "FAIL"      # 0.88 < 0.99 * 0.90
    assert rows_by(rows, "openai-whisper-tiny.en-fp32", 1)["accuracy_gate"] == "reference"
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
    with open(results / "merged.csv") as f:
        merged = list(csv.DictReader(f))
    assert len(merged) == 9 and not any("fp16" in r["cell"] for r in merged)


def test_results_md_answers_from_answer_json_and_keeps_hand_text(results, tmp_path):
    md = tmp_path / "RESULTS.md"
    md.write_text(f"# Our notes\n\nWritten by hand.\n\n{BEGIN}\nold\n{END}\n\nFooter by hand.\n")
    write_report(results, md)
    first = md.read_text()
    assert first.startswith("# Our notes\n\nWritten by hand.\n\n") and first.endswith("\n\nFooter by hand.\n")
    assert "\nold\n" not in first and "## box" in first
    assert "Accuracy gate: word accuracy against the references (whisper-bench-en normaliser, mean over each " \
           "row's rounds) at least 99 % of openai-whisper fp32's run at 1c (3 rounds), WER 10.00 %." in first
    assert "- Fastest at 1 core: **ort-tiny.en-fp32@1c**" in first
    assert "the runner-up openai-whisper-tiny.en-fp32@1c takes" in first
    assert "- Cheapest per core-hour: **ort-tiny.en-fp32@1c**" in first
    assert "faster-whisper-tiny.en-int8@2c: oom" in first
    answer = json.loads((tmp_path / "answer.json").read_text())
    main = answer["comparisons"][0]   # the largest comparison first
    q = main["questions"][0]
    assert q["key"] == "fastest@1c" and q["status"] == "winner" and q["leader"]["cell"] == "ort-tiny.en-fp32@1c"
    board = main["leaderboard"]
    assert all(e["cell"] in first for e in board)   # the leaderboard is rendered from answer.json
    plots = sorted((results / "plots").glob("*.png"))
    stamps = {p: p.stat().st_mtime_ns for p in plots}
    write_report(results, md)
    assert md.read_text() == first
    assert {p: p.stat().st_mtime_ns for p in plots} == stamps  # nothing rewritten


def test_answer_json_validates_against_its_schema(results, tmp_path):
    import jsonschema

    from harness.report.answer import SCHEMA_PATH

    write_report(results, tmp_path / "RESULTS.md")
    answer = json.loads((tmp_path / "answer.json").read_text())
    jsonschema.validate(answer, json.loads(SCHEMA_PATH.read_text()))
    answer["comparisons"][0]["questions"][0]["status"] = "probably"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(answer, json.loads(SCHEMA_PATH.read_text()))


def test_overlapping_intervals_are_a_tie_with_the_smallest_resolvable_difference(tmp_path):
    r = tmp_path / "results"
    make_cell(r, C1, "ort-tiny.en-int8", rtf=0.0400, noise=0.05, seed=1)
    make_cell(r, C1, "faster-whisper-tiny.en-int8", rtf=0.0408, noise=0.05, seed=2)
    make_cell(r, C1, "openai-whisper-tiny.en-fp32", rtf=0.08, seed=3)
    md = tmp_path / "RESULTS.md"
    write_report(r, md)
    fastest = line(md.read_text(), "- Fastest at 1 core")
    assert fastest.startswith("- Fastest at 1 core: tie: ")
    assert "ort-tiny.en-int8" in fastest and "faster-whisper-tiny.en-int8" in fastest
    assert "openai-whisper" not in fastest and "would have been resolved" in fastest


def test_per_round_ratios_that_disagree_are_a_tie_and_a_noisy_row_is_named(tmp_path):
    """The committed 1-core 'winner' had per-round ratios 0.759 and 0.929: with runs as replicates that is a tie."""
    r = tmp_path / "results"
    make_cell(r, C1, "faster-whisper-tiny.en-int8", rtf=0.040, rounds=2, round_factors=[0.759, 0.929])
    make_cell(r, C1, "openvino-tiny.en-int8", rtf=0.040, rounds=2, round_factors=[1.0, 1.0])
    make_cell(r, C1, "openai-whisper-tiny.en-fp32", rtf=0.09, rounds=2)
    md = tmp_path / "RESULTS.md"
    write_report(r, md)
    text = md.read_text()
    assert line(text, "- Fastest at 1 core").startswith("- Fastest at 1 core: tie: ")
    assert "  - note: faster-whisper-tiny.en-int8@1c: noisy (CV" in text


def test_many_rounds_keep_the_point_inside_its_interval_and_plots_draw(tmp_path):
    r = tmp_path / "results"
    make_cell(r, C1, "ort-tiny.en-int8", rtf=0.04, rounds=9, noise=0.15, seed=4)   # skewed runs, 9 rounds
    make_cell(r, C1, "openai-whisper-tiny.en-fp32", rtf=0.08, rounds=9, seed=5)
    rows = write_report(r, tmp_path / "RESULTS.md").rows
    for row in rows:
        assert row["rtf_ci_low"] <= row["rtf"] <= row["rtf_ci_high"]
    assert (r / "plots" / "box-rtf_vs_cores.png").stat().st_size > 5000


def test_rounds_pair_by_round_id_not_position(tmp_path):
    from harness.evidence.stats import ratio

    a = {"r:1": 1.0, "r:2": 1.1, "r:3": 0.9}
    b = {"r:2": 1.1, "r:3": 0.9, "r:4": 5.0}   # rounds 2 and 3 in common, identical
    pair = ratio(a, b)
    assert pair.paired and pair.n == 2 and pair.point == pytest.approx(1.0)
    r = ratio({"x:1": 1.0, "x:2": 1.2}, {"y:1": 1.0, "y:2": 1.2})   # other runs: Welch, unpaired
    assert not r.paired


def test_an_interrupted_extra_round_keeps_the_cell(tmp_path):
    r = tmp_path / "results"
    make_cell(r, C1, "ort-tiny.en-int8", rtf=0.04, rounds=4, status="interrupted")
    make_cell(r, C1, "openai-whisper-tiny.en-fp32", rtf=0.08, rounds=4)
    row = rows_by(build_report(r, tmp_path / "R.md").rows, "ort-tiny.en-int8", 1)
    assert row["status"] == "ok" and row["n_rounds"] == 3 and row["n_rounds_run"] == 4


def test_a_loaded_round_is_not_counted_and_is_named(tmp_path):
    r = tmp_path / "results"
    make_cell(r, C1, "ort-tiny.en-int8", rtf=0.04, rounds=3, loaded=(2,))
    make_cell(r, C1, "openai-whisper-tiny.en-fp32", rtf=0.08, rounds=3)
    report = build_report(r, tmp_path / "R.md")
    row = rows_by(report.rows, "ort-tiny.en-int8", 1)
    assert row["n_rounds"] == 2 and "r" not in row["runs"] and row["loaded_rounds"] == [2]
    entry = next(e for e in report.answer["comparisons"][0]["leaderboard"] if e["cell"] == "ort-tiny.en-int8@1c")
    assert any("under load not counted: round 2" in f for f in entry["flags"])


def test_one_candidate_is_not_a_winner(tmp_path):
    r = tmp_path / "results"
    make_cell(r, C1, "openai-whisper-base-fp32", model="base", rtf=0.14, rounds=1)
    md = tmp_path / "RESULTS.md"
    write_report(r, md)
    assert "- Fastest at 1 core: one candidate (openai-whisper-base-fp32@1c" in md.read_text()
    assert "nothing compared" in md.read_text() and "**" not in line(md.read_text(), "- Fastest at 1 core")


def test_the_gate_does_not_depend_on_which_engines_ran(tmp_path):
    """Without the declared reference the answer is ungated, never gated against whichever run is most accurate."""
    r = tmp_path / "results"
    make_cell(r, C1, "faster-whisper-tiny.en-int8", rtf=0.05, wer=0.1336)
    make_cell(r, C1, "openvino-tiny.en-int8", rtf=0.04, wer=0.1438)
    rows = build_report(r, tmp_path / "R.md").rows
    assert all(row["accuracy_gate"] is None for row in rows)
    make_cell(r, C1, "openai-whisper-tiny.en-fp32", rtf=0.09, wer=0.1376)
    gates = {row["cell"]: row["accuracy_gate"] for row in build_report(r, tmp_path / "R.md").rows}
    assert gates["openvino-tiny.en-int8"] == "pass" and gates["faster-whisper-tiny.en-int8"] == "pass"


def test_throughput_comparisons_gate_against_the_batch_1_reference(tmp_path):
    r = tmp_path / "results"
    make_cell(r, C1, "openai-whisper-tiny.en-fp32", rtf=0.09, wer=0.10)
    make_cell(r, C1, "ort-tiny.en-int8-batch8", rtf=0.03, wer=0.10, decoding={"batch_size": 8}, variant="int8")
    make_cell(r, C1, "faster-whisper-tiny.en-int8-batch8", rtf=0.02, wer=0.30, decoding={"batch_size": 8},
              variant="int8", seed=3)
    md = tmp_path / "RESULTS.md"
    report = write_report(r, md)
    gates = {row["cell"]: row["accuracy_gate"] for row in report.rows}
    assert gates["faster-whisper-tiny.en-int8-batch8"] == "FAIL" and gates["ort-tiny.en-int8-batch8"] == "pass"
    batched = next(a for a in answer_block(md.read_text()) if "throughput at batch 8" in a)
    assert "Most throughput at batch 8 at 1 core: one candidate (ort-tiny.en-int8-batch8@1c" in batched


def test_cells_of_another_machine_are_never_mixed_in_one_comparison(tmp_path):
    r = tmp_path / "results"
    make_cell(r, C1, "openai-whisper-tiny.en-fp32", rtf=0.14, cpu="Intel Xeon")
    make_cell(r, C1, "ort-tiny.en-int8", rtf=0.05, cpu="AMD EPYC", seed=2)
    make_cell(r, C2, "openai-whisper-tiny.en-fp32", rtf=0.09, cpu="AMD EPYC", seed=3)
    answer = build_report(r, tmp_path / "R.md").answer
    assert len(answer["comparisons"]) == 2
    cpus = sorted(c["host"]["cpu_model"] for c in answer["comparisons"])
    assert cpus == ["AMD EPYC", "Intel Xeon"]


def test_only_like_is_compared_with_like(tmp_path):
    r = tmp_path / "results"
    make_cell(r, C1, "ort-tiny.en-fp32", rtf=0.05)
    make_cell(r, C1, "ort-base-fp32", rtf=0.12, model="base", seed=2)
    make_cell(r, C1, "faster-whisper-tiny.en-fp32", rtf=0.04, decoding={"beam_size": 5}, seed=3)
    make_cell(r, C1, "openai-whisper-tiny.en-fp32", rtf=0.08, seed=4)
    md = tmp_path / "RESULTS.md"
    write_report(r, md)
    text = md.read_text()
    assert text.count("### Answer ") == 3
    answers = answer_block(text)
    beam5 = next(a for a in answers if "beam_size=5" in a)
    tiny_beam1 = next(a for a in answers if "model tiny.en" in a and "beam_size=1" in a)
    assert "- Fastest at 1 core: one candidate (faster-whisper-tiny.en-fp32@1c" in beam5
    assert "- Fastest at 1 core: **ort-tiny.en-fp32@1c**" in tiny_beam1 and "faster-whisper" not in tiny_beam1


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


def test_plots_are_non_empty_pngs_linked_from_results_md(results, tmp_path):
    md = tmp_path / "RESULTS.md"
    write_report(results, md)
    pngs = sorted((results / "plots").glob("box-*.png"))
    assert pngs
    for png in pngs:
        data = png.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, png.name
        assert f"(results/plots/{png.name})" in md.read_text()


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


def test_a_sut_reached_without_verified_tls_is_marked_in_results_md(tmp_path):
    r = tmp_path / "results"
    cell = make_cell(r, C1, "ort-tiny.en-int8", rtf=0.05, rounds=1)
    run = cell / "round-1" / "run.json"
    record = json.loads(run.read_text())
    record["host"]["docker_insecure"] = "tcp:// without verified TLS (insecure = true in the fleet file)"
    run.write_text(json.dumps(record))
    md = tmp_path / "RESULTS.md"
    write_report(r, md)
    assert "INSECURE: its Docker engine was reached over tcp:// without verified TLS" in md.read_text()
