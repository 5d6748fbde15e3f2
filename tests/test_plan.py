"""Configuration, CPU-set choice and time -v parsing (no Docker needed)."""
from argparse import Namespace
from pathlib import Path

import pytest

from harness.errors import UserError
from harness.run.config import build_config, parse_engines, plan_cells
from harness.run.cpus import choose_cpuset, default_cores_list, format_cpu_list, parse_cpu_list
from harness.run.time_v import parse_time_v


def fake_sysfs(root, topology):
    """topology: cpu -> (package, core)."""
    for cpu, (package, core) in topology.items():
        d = root / f"cpu{cpu}" / "topology"
        d.mkdir(parents=True)
        (d / "physical_package_id").write_text(f"{package}\n")
        (d / "core_id").write_text(f"{core}\n")
    return root


def test_cpu_lists_round_trip():
    assert parse_cpu_list("0-3,8,10-11") == [0, 1, 2, 3, 8, 10, 11]
    assert format_cpu_list([11, 0, 1, 2, 3, 8, 10]) == "0-3,8,10-11"
    with pytest.raises(UserError, match="runs backwards"):
        parse_cpu_list("3-1")
    with pytest.raises(UserError, match="not a CPU number"):
        parse_cpu_list("0,x")


def test_smt_siblings_are_placed_together(tmp_path):
    # 4 cores x 2 threads, Linux numbering: sibling of cpu N is N+4.
    sysfs = fake_sysfs(tmp_path, {c: (0, c % 4) for c in range(8)})
    cpus, smt = choose_cpuset(list(range(8)), 4, sysfs)
    assert cpus == [0, 4, 1, 5]
    assert smt["physical_cores"] == [[0, 4], [1, 5]] and smt["smt_siblings_in_set"] and not smt["split_core"]
    cpus, smt = choose_cpuset(list(range(8)), 3, sysfs)
    assert cpus == [0, 4, 1] and smt["split_core"]


def test_no_topology_means_one_cpu_per_core(tmp_path):
    cpus, smt = choose_cpuset([2, 3, 5], 2, tmp_path)
    assert cpus == [2, 3] and not smt["smt_siblings_in_set"]


def test_default_core_counts_are_powers_of_two():
    assert default_cores_list(1) == [1]
    assert default_cores_list(8) == [1, 2, 4, 8]
    assert default_cores_list(12) == [1, 2, 4, 8, 12]


def test_engines_expand_to_variants():
    assert parse_engines("ort faster-whisper:int8") == [("ort", "fp32"), ("ort", "int8"), ("faster-whisper", "int8")]
    assert len(parse_engines("")) == 8   # the default: ort, faster-whisper, whisper-cpp, openvino, two variants each
    assert len(parse_engines("all")) == 12
    assert parse_engines("whisper-cpp") == [("whisper-cpp", "f16"), ("whisper-cpp", "q8_0")]
    assert parse_engines("whisper-cpp:q5_0 openvino:bf16") == [("whisper-cpp", "q5_0"), ("openvino", "bf16")]
    with pytest.raises(UserError, match="unknown engine 'whisperx'"):
        parse_engines("whisperx")
    with pytest.raises(UserError, match="hf supports precision fp32, not 'int8'"):
        parse_engines("hf:int8")
    assert parse_engines("ort:q8-b32") == [("ort", "q8-b32")]  # a build under the model's variants/
    with pytest.raises(UserError, match="or a build under variants/, not '../x'"):
        parse_engines("ort:../x")


def blank_args(**kw):
    names = ("cores_list", "cpuset", "sut", "memory_gb", "engines", "model", "repeats", "max_rounds", "time_budget",
             "seed", "warmup", "timeout", "heartbeat", "quiet_busy", "quiet_wait", "results", "models_dir", "audio_dir")
    return Namespace(**{n: kw.get(n) for n in names}, engine_args=[])


def test_environment_configures_and_flags_win():
    env = {"CORES_LIST": "1", "SUT_NAME": "my-box-1", "MEMORY_GB": "4", "ENGINES": "ort:int8", "REPEATS": "3",
           "WARMUP": "0", "MODEL_PROGRESS_INTERVAL_SEC": "7", "CPUSET": "0"}
    config = build_config(blank_args(), env)
    assert (config.sut, config.memory_gb, config.engines, config.rounds, config.warmup, config.heartbeat_s) == \
        ("my-box-1", 4.0, [("ort", "int8")], 3, 0, 7.0)
    assert config.shape_dir(1).parts[-2:] == ("my-box-1", "container_1c4g")
    assert build_config(blank_args(repeats="2"), env).rounds == 2
    assert [(c.engine, c.cores, c.cpuset) for c in plan_cells(config)] == [("ort", 1, (0,))]


@pytest.mark.parametrize("setting,message", [
    ({"cores_list": "1 99"}, "CORES_LIST asks for 99 cores"),
    ({"cpuset": "0-999"}, "CPUSET 0-999: CPU .* is not usable"),
    ({"memory_gb": "100000"}, "MEMORY_GB=100000 is more than"),
    ({"repeats": "x"}, "REPEATS='x' is not a number"),
    ({"sut": "../x"}, "SUT_NAME='../x': use letters"),
    ({"time_budget": "soon"}, "TIME_BUDGET='soon' is not a number"),
])
def test_bad_configuration_is_refused(setting, message):
    with pytest.raises(UserError, match=message):
        build_config(blank_args(**setting), {})


def test_every_run_setting_has_a_flag_and_a_variable_from_one_table():
    import argparse

    from harness.cli import add_run_arguments
    from harness.run.settings import SETTINGS, env_names

    parser = argparse.ArgumentParser()
    add_run_arguments(parser, engine_args=False)
    flags = {a.dest for a in parser._actions}
    assert {s.dest for s in SETTINGS} <= flags
    assert len(env_names()) == len(set(env_names())) == len(SETTINGS)
    makefile = (Path(__file__).parent.parent / "Makefile").read_text()
    assert "harness.run.settings --env-names" in makefile    # the Makefile exports what the table names


def test_time_budget_in_minutes_and_zero_means_none():
    assert build_config(blank_args(cpuset="0"), {"TIME_BUDGET": "7.5"}).time_budget_s == 450
    assert build_config(blank_args(cpuset="0", time_budget="0"), {"TIME_BUDGET": "9"}).time_budget_s is None
    assert build_config(blank_args(cpuset="0"), {}).time_budget_s == 25 * 60


def test_a_housekeeping_cpu_is_kept_off_the_cells_where_the_host_can_spare_one():
    from harness.run.housekeeping import split_pool

    assert split_pool([0, 1, 2, 3], 2) == ([1, 2, 3], 0)
    assert split_pool([0, 1], 2) == ([0, 1], None)          # this 2-vCPU host at CORES_LIST "1 2": none to spare
    config = build_config(blank_args(cpuset="0-1", cores_list="1", engines="ort:int8"), {})
    assert config.housekeeping_cpu == 0 and [c.cpuset for c in plan_cells(config)] == [(1,)]


def test_progress_gives_an_eta_from_the_runs_so_far_and_the_budget():
    import io

    from harness.run.progress import PlanProgress

    out = io.StringIO()
    progress = PlanProgress(10, stream=out)
    for _ in range(4):
        progress.finished()
    progress.starting("next", elapsed=40.0)            # 10 s a run, 6 runs left
    assert "about 1m00s left" in out.getvalue()
    budgeted = PlanProgress(10, stream=out, budget_s=600)
    budgeted.done = 4
    assert budgeted.eta_s(40.0) == 560                 # contender rounds fill the budget


TIME_V_OOM = """\tCommand terminated by signal 9
\tCommand being timed: "python -m engines ort --threads 1"
\tUser time (seconds): 0.41
\tSystem time (seconds): 0.13
\tPercent of CPU this job got: 72%
\tElapsed (wall clock) time (h:mm:ss or m:ss): 1:02:03.50
\tMaximum resident set size (kbytes): 262144
\tExit status: 0
"""


def test_time_v_report_is_parsed():
    parsed = parse_time_v(TIME_V_OOM)
    assert parsed["terminated_by_signal"] == 9
    assert parsed["elapsed_s"] == pytest.approx(3723.5)
    assert parsed["max_rss_mb"] == 256 and parsed["cpu_percent"] == 72 and parsed["user_s"] == 0.41


def test_batch_sizes_add_throughput_cells_for_engines_that_batch():
    env = {"CORES_LIST": "1", "ENGINES": "ort:int8 openai-whisper faster-whisper:int8", "CPUSET": "0",
           "BATCH_SIZES": "1 8"}
    config = build_config(blank_args(), env)
    cells = plan_cells(config)
    assert [(c.engine, c.batch) for c in cells] == [("ort", 1), ("openai-whisper", 1), ("faster-whisper", 1),
                                                     ("ort", 8), ("faster-whisper", 8)]
    assert cells[3].name("tiny.en") == "ort-tiny.en-int8-batch8"
    from harness.run.container import engine_command

    assert engine_command(config, cells[3])[-2:] == ["--batch-size", "8"]
    assert "--batch-size" not in engine_command(config, cells[0])


def test_the_containers_command_is_what_the_runner_parses():
    """engines/command.py builds the runner's arguments for the containers and the bench script: each setting
    arrives in the runner's own parser as the cell asked for it."""
    from engines.runner import parse_args
    from harness.run.container import engine_command

    env = {"CORES_LIST": "2", "ENGINES": "ort:int8", "CPUSET": "0,1", "BATCH_SIZES": "4", "WARMUP": "0"}
    config = build_config(blank_args(), env)
    config.engine_args = ["--beam-size", "5"]
    [cell] = plan_cells(config)
    args = parse_args(engine_command(config, cell))
    assert (args.engine, args.precision, args.threads, args.batch_size, args.beam_size, args.warmup) == \
        ("ort", "int8", 2, 4, 5, config.warmup)
    assert (args.model_dir, args.audio_dir, args.out, args.model_name) == ("/models", "/audio", "/results", "tiny.en")
