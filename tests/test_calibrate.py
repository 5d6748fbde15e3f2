"""`harness calibrate`: an A/A run of one variant as two identical cells, through containers, racing rounds,
scoring and verdicts; and the noise estimate it prints."""
import json
import math

import pytest

from harness.calibrate import aa_cells, noise


def test_noise_comes_from_the_paired_rounds_of_the_identical_cells():
    a = {"cores": 1, "runs": {"r:1": 1.00, "r:2": 1.04, "r:3": 0.98, "r:4": 1.02}}
    b = {"cores": 1, "runs": {"r:1": 1.02, "r:2": 1.00, "r:3": 1.01, "r:4": 0.97}}
    got = noise([a, b])
    diffs = [math.log(a["runs"][k]) - math.log(b["runs"][k]) for k in a["runs"]]
    mean = sum(diffs) / 4
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / 3)
    assert got["n_pairs"] == 4 and got["sigma_per_run"] == pytest.approx(sd / math.sqrt(2))


def test_the_plan_is_every_cell_twice(tmp_path):
    from argparse import Namespace

    from harness.run.config import build_config

    config = build_config(Namespace(cpuset="0", cores_list="1", engines="ort:int8"), env={})
    cells = aa_cells(config)
    assert [c.replica for c in cells] == [0, 1]
    assert cells[0].name("tiny.en") == "ort-tiny.en-int8" and cells[1].name("tiny.en") == "ort-tiny.en-int8-aa1"


@pytest.mark.docker
@pytest.mark.slow
def test_calibrate_calls_identical_cells_a_tie(tmp_path, open_clips, tiny_model, ort_image):
    from conftest import ROOT, run_cli

    proc = run_cli("-m", "harness", "calibrate", "--cpuset", "0", "--sut", "cal", "--engines", "ort:int8",
                   "--results", str(tmp_path / "results"), "--models-dir", str(ROOT / "models"),
                   "--audio-dir", str(open_clips), "--no-build", "--max-rounds", "4", "--time-budget", "3",
                   "--warmup", "0", "--quiet-busy", "1.0", "--quiet-wait", "0")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "run-to-run noise sigma" in proc.stdout and "false-difference rate" in proc.stdout
    result = json.loads((tmp_path / "results" / "cal" / "calibration" / "calibration.json").read_text())
    [verdict] = result["verdicts"]
    assert verdict["status"] == "tie", proc.stdout
    assert result["noise"]["n_pairs"] >= 2
    cells = sorted(p.name for p in (tmp_path / "results" / "cal" / "calibration" / "container_1c8g").iterdir())
    assert cells == ["ort-tiny.en-int8", "ort-tiny.en-int8-aa1"]
