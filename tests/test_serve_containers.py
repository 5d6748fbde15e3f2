"""`harness serve` end to end in the pinned ort container: LoadGen's logs per test, the search's points,
the audit, energy labelled with its source, and the capacity report."""
import json
from argparse import Namespace

import pytest
from test_containers import make_config

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def test_serve_stage_runs_accuracy_offline_and_server_points_in_the_container(tmp_path, open_clips, tiny_model,
                                                                                ort_image, docker_client):
    from harness.report.capacity import write_capacity_report
    from harness.serve.energy import rapl_packages
    from harness.serve.run import run_serving
    from harness.serve.settings import build_serve_settings

    config = make_config(tmp_path, open_clips, engines="ort:int8")
    settings = build_serve_settings(Namespace(serve_duration_ms="3000", serve_min_queries="2", search_steps="1",
                                              latency_bound_ms="8000", audit_probability="1"), env={})
    [record] = run_serving(config, settings, build=False)
    cell_dir = tmp_path / "results" / "test" / "serving" / "container_1c2g" / "ort-tiny.en-int8-w1t1"
    tests = [t["test"] for t in record["tests"]]
    assert tests[:2] == ["accuracy", "offline"] and len(tests) >= 3 and tests[2].startswith("server-")
    for name in tests:  # every test's own container left LoadGen's summary and a run.json with its status
        assert (cell_dir / name / "mlperf_log_summary.txt").is_file(), name
        run = json.loads((cell_dir / name / "run.json").read_text())
        assert run["status"] == "ok" and run["cpuset"] == "0" and run["command"][0] == "serve"
    assert record["accuracy"]["n_files"] == 2 and record["accuracy"]["wer"] is not None
    assert record["audit"]["verdict"] == "pass" and record["audit"]["compared"] >= 1
    assert all(p["target_qps"] > 0 and "meets_bound" in p for p in record["server_points"])
    source = record["offline"]["energy"]["source"]
    assert source.startswith("rapl" if rapl_packages() else "estimate")

    md = write_capacity_report(config.sut_dir).read_text()
    assert "ort int8 1x1" in md and ("estimate" in md or "rapl" in md)
    assert (config.sut_dir / "plots" / "capacity_latency_1c.png").is_file()
