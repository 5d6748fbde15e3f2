"""SCENARIOS and the serving settings: parsing, defaults, layouts."""
from argparse import Namespace

import pytest

from conftest import run_cli
from harness.cli import build_parser
from harness.errors import UserError
from harness.serve.settings import (
    DEFAULT_DURATION_MS,
    MLPERF_DURATION_MS,
    build_serve_settings,
    layouts_for,
    parse_scenarios,
    scenarios_of,
)


def test_the_default_run_stays_single_stream_and_serve_defaults_to_the_loadgen_scenarios():
    assert scenarios_of(build_parser().parse_args([]), env={}) == ("single-stream",)
    assert scenarios_of(build_parser().parse_args(["run"]), env={}) == ("single-stream",)
    assert scenarios_of(build_parser().parse_args(["run"]), env={"SCENARIOS": "server"}) == ("server",)
    assert build_serve_settings(build_parser().parse_args(["serve"]), env={}).scenarios == ("offline", "server")
    assert parse_scenarios("server, offline server") == ("server", "offline")


def test_an_unknown_scenario_is_one_clear_line():
    with pytest.raises(UserError, match="unknown scenario 'batch'"):
        parse_scenarios("offline batch")
    proc = run_cli("-m", "harness", "serve", "--scenarios", "streaming")
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        "error: SCENARIOS: unknown scenario 'streaming'; choose from single-stream, offline, server"]


def test_layouts_cover_every_workers_by_threads_split_and_batching_engines_get_dynamic_batches():
    names = [lay.name for lay in layouts_for(2, "ort", [1, 4])]
    assert names == ["w1t2", "w2t1", "w1t2-batch4", "w2t1-batch4"]
    assert [lay.name for lay in layouts_for(2, "openai-whisper", [1, 4])] == ["w1t2", "w2t1"]
    assert [lay.name for lay in layouts_for(4, "ort", [1], "2x2")] == ["w2t2"]
    with pytest.raises(UserError, match="WORKERSxTHREADS"):
        layouts_for(2, "ort", [1], "two")


def test_mlperf_durations_are_one_switch():
    short = build_serve_settings(Namespace(), env={})
    long = build_serve_settings(Namespace(), env={"MLPERF_DURATIONS": "1"})
    assert (short.duration_ms, short.mlperf) == (DEFAULT_DURATION_MS, False)
    assert (long.duration_ms, long.min_queries, long.mlperf) == (MLPERF_DURATION_MS, 100, True)
    with pytest.raises(UserError, match="AUDIT_PROBABILITY"):
        build_serve_settings(Namespace(), env={"AUDIT_PROBABILITY": "2"})
