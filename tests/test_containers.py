"""Containerized runs against the real Docker engine (brought up by scripts/ensure-docker.sh)."""
import json
import os
import subprocess
from argparse import Namespace

import pytest

from conftest import ROOT, run_cli

pytestmark = [pytest.mark.docker, pytest.mark.slow]
LABEL = "org.whisper-bench.cell"


def make_config(tmp_path, clips, **overrides):
    from harness.run.config import build_config

    args = Namespace(cores_list="1", cpuset="0", sut="test", memory_gb="2", engines="ort:fp32", model="tiny.en",
                     repeats="1", max_rounds="1", seed="7", warmup="0", timeout="300", heartbeat="5",
                     quiet_busy="1.0", quiet_wait="0", results=str(tmp_path / "results"),
                     models_dir=str(ROOT / "models"), audio_dir=str(clips), engine_args=[])
    for key, value in overrides.items():
        setattr(args, key, value)
    return build_config(args, env={})


def run_one(tmp_path, clips, **overrides):
    from harness.run.loop import run_comparison

    config = make_config(tmp_path, clips, **overrides)
    [record] = run_comparison(config, build=False)
    cell_dir = config.shape_dir(1) / record["cell"] / "round-1"
    return record, cell_dir


def containers_left(client):
    return client.containers.list(all=True, filters={"label": LABEL})


def test_ort_pinned_to_cpu0_with_memory_limit(tmp_path, open_clips, tiny_model, ort_image, docker_client):
    record, cell_dir = run_one(tmp_path, open_clips)
    assert cell_dir == tmp_path / "results" / "test" / "container_1c2g" / "ort-tiny.en-fp32" / "round-1"
    assert record["status"] == "ok", record
    assert record["exit_code"] == 0 and not record["oom_killed"] and not record["timed_out"]
    assert record["image_id"] == ort_image and record["cpuset"] == "0"
    assert record["memory_limit_bytes"] == 2 * 2**30 and record["network"] == "none"

    summary = json.loads((cell_dir / "inference_summary.json").read_text())
    assert summary["cpuset"] == [0] and summary["threads"] == 1  # what the engine saw inside
    assert summary["n_ok"] == 2 and summary["failures"] == 0

    time_v = record["time_v"]
    assert time_v["exit_status"] == 0 and time_v["max_rss_kb"] > 50_000
    assert 0 < time_v["elapsed_s"] <= record["host_wall_s"]
    assert record["container_overhead_s"] >= 0
    assert record["harness_overhead_s"] == pytest.approx(record["host_wall_s"] - summary["total_processing_s"])
    assert 0 < record["cgroup_peak_bytes"] <= record["memory_limit_bytes"]
    assert "memory" in record["cgroup_peak_source"]
    assert 0 < record["cgroup_anon_bytes"] <= record["cgroup_peak_bytes"] and record["page_cache_evicted"]
    assert record["quiet"]["busy_share"] >= 0 and record["host"]["isa"] is not None
    assert 0 <= record["foreign_busy_share"] < 0.5  # nothing else ran on CPU 0 during the run

    for name in ("inference_per_file.csv", "inference_per_file.json", "inference_per_file.jsonl", "time.txt",
                 "container.log",
                 "run.json", "cgroup_memory.json"):
        assert (cell_dir / name).is_file(), name
        assert (cell_dir / name).stat().st_uid == os.getuid()
    assert containers_left(docker_client) == []


def test_too_small_memory_limit_is_an_oom_row(tmp_path, open_clips, tiny_model, ort_image, docker_client):
    record, cell_dir = run_one(tmp_path, open_clips, memory_gb="0.25")
    assert record["status"] == "oom" and record["oom_killed"], record
    assert record["exit_code"] != 0
    assert json.loads((cell_dir / "run.json").read_text())["status"] == "oom"
    assert containers_left(docker_client) == []


def test_timeout_is_a_timeout_row(tmp_path, open_clips, tiny_model, ort_image, docker_client):
    record, cell_dir = run_one(tmp_path, open_clips, timeout="2")
    assert record["status"] == "timeout" and record["timed_out"], record
    assert record["host_wall_s"] < 30
    assert containers_left(docker_client) == []


def test_engine_exit_code_is_a_failed_row_with_its_error(tmp_path, open_clips, tiny_model, ort_image):
    from harness.run.loop import run_comparison

    config = make_config(tmp_path, open_clips)
    config.engine_args = ["--precision", "fp16"]  # neither a variant of ort nor a build: it refuses to load
    [record] = run_comparison(config, build=False)
    assert record["status"] == "failed" and record["exit_code"] == 2 and not record["oom_killed"]
    assert record["error"] == ("error: ort: /models/variants/fp16: no such build (make it with "
                               "`python -m harness discover`)")


def test_rerun_moves_the_old_cell_to_backups(tmp_path, open_clips, tiny_model, ort_image):
    first, cell_dir = run_one(tmp_path, open_clips, timeout="2")
    old = (cell_dir / "run.json").read_text()
    second, _ = run_one(tmp_path, open_clips)
    backups = list((tmp_path / "results" / "test" / "backups").glob(
        "*/container_1c2g/ort-tiny.en-fp32/round-1/run.json"))
    assert len(backups) == 1 and backups[0].read_text() == old
    assert json.loads((cell_dir / "run.json").read_text())["status"] == second["status"] == "ok"


def test_more_cores_than_the_host_is_refused_before_any_container(tmp_path, docker_client):
    before = {c.id for c in docker_client.containers.list(all=True)}
    too_many = len(os.sched_getaffinity(0)) + 1
    proc = run_cli("-m", "harness", "run", "--cores-list", f"1 {too_many}", "--results", str(tmp_path / "r"))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: CORES_LIST asks for") and str(too_many) in lines[0]
    assert not (tmp_path / "r").exists()
    assert {c.id for c in docker_client.containers.list(all=True)} == before


def test_docker_down_is_one_line(tmp_path, clips, tiny_model):
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"}
    proc = subprocess.run([os.sys.executable, "-m", "harness", "run", "--cores-list", "1", "--engines", "ort",
                           "--audio-dir", str(clips), "--results", str(tmp_path / "r")],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: Docker is not reachable")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_missing_model_and_audio_are_named(tmp_path, clips, tiny_model):
    proc = run_cli("-m", "harness", "run", "--cores-list", "1", "--models-dir", str(tmp_path / "none"),
                   "--audio-dir", str(clips))
    assert proc.returncode == 2 and "models prepare --model tiny.en" in proc.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = run_cli("-m", "harness", "run", "--cores-list", "1", "--audio-dir", str(empty))
    assert proc.returncode == 2 and f"audio folder {empty} holds no audio files" in proc.stderr
    if os.getuid() == 0:
        private = tmp_path / "private"
        private.mkdir(mode=0o700)
        (private / "a.wav").write_bytes((clips / "short.wav").read_bytes())
        proc = run_cli("-m", "harness", "run", "--cores-list", "1", "--audio-dir", str(private))
        assert proc.returncode == 2 and f"{private} is not readable by the containers' unprivileged user" in proc.stderr


STOPS = [("SIGINT", 130, False), ("SIGTERM", 143, False), ("SIGHUP", 129, False),
         ("SIGINT", 130, True)]  # the last as a shell's background job starts it: SIGINT ignored


@pytest.mark.parametrize("signame,code,background", STOPS, ids=["int", "term", "hup", "int-background"])
def test_a_stop_signal_removes_the_container_and_keeps_finished_results(tmp_path, open_clips, tiny_model, ort_image,
                                                                        docker_client, signame, code, background):
    import signal
    import time

    results = tmp_path / "results"
    common = ["-m", "harness", "run", "--engines", "ort:fp32", "--model", "tiny.en", "--sut", "t", "--cpuset", "0",
              "--memory-gb", "2", "--warmup", "0", "--audio-dir", str(open_clips), "--results", str(results),
              "--no-build", "--no-report", "--quiet-wait", "0"]
    done = run_cli(*common, "--cores-list", "1", "--repeats", "1")
    assert done.returncode == 0, done.stderr
    finished = tree_digest(results / "t" / "container_1c2g")

    def child_signals():  # as a terminal starts it, whatever this test inherited (nohup ignores SIGHUP)
        for sig in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)
        if background:
            signal.signal(signal.SIGINT, signal.SIG_IGN)

    proc = subprocess.Popen([os.sys.executable, *common, "--cores-list", "1", "--repeats", "20",
                             "--results", str(results / "second")], cwd=ROOT, stderr=subprocess.PIPE, text=True,
                            preexec_fn=child_signals)
    try:
        deadline = time.time() + 60
        while not containers_left(docker_client) and time.time() < deadline:
            time.sleep(0.2)
        assert containers_left(docker_client), "the container never started"
        time.sleep(1)
        proc.send_signal(getattr(signal, signame))
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:  # a harness left running would hold the engine for the tests after this one
            proc.kill()
            proc.wait()
    assert proc.returncode == code, err
    assert "interrupted; finished results are kept" in err
    assert containers_left(docker_client) == []
    runs = sorted((results / "second" / "t" / "container_1c2g" / "ort-tiny.en-fp32").glob("round-*/run.json"))
    last = json.loads(runs[-1].read_text())
    assert last["status"] == "interrupted" and last["interrupted_by"] == signame
    assert tree_digest(results / "t" / "container_1c2g") == finished


def test_a_second_harness_is_refused_and_leftovers_are_removed(tmp_path, open_clips, tiny_model, ort_image,
                                                               docker_client):
    import time

    from harness.run.container import LABEL

    common = ["-m", "harness", "run", "--engines", "ort:fp32", "--sut", "t", "--cpuset", "0", "--cores-list", "1",
              "--memory-gb", "2", "--warmup", "0", "--audio-dir", str(open_clips), "--no-build", "--no-report",
              "--quiet-wait", "0"]
    first = subprocess.Popen([os.sys.executable, *common, "--repeats", "20", "--results", str(tmp_path / "a")],
                             cwd=ROOT, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not containers_left(docker_client) and time.time() < deadline:
        time.sleep(0.2)
    second = run_cli(*common, "--repeats", "1", "--results", str(tmp_path / "b"))
    first.kill()  # SIGKILL: no clean-up, the container stays behind
    first.communicate(timeout=60)
    assert second.returncode == 2
    line = second.stderr.strip()
    assert line.startswith("error: another harness is using this Docker engine (pid ") and "SUT t" in line
    assert len(line.splitlines()) == 1 and not (tmp_path / "b").exists()
    left = containers_left(docker_client)
    assert left and left[0].labels[LABEL] == "ort-tiny.en-fp32"
    third = run_cli(*common, "--repeats", "1", "--results", str(tmp_path / "c"))
    assert third.returncode == 0, third.stderr
    assert "removed a benchmark container left by an earlier harness" in third.stderr
    assert containers_left(docker_client) == []


def test_a_full_results_disk_is_one_line_and_leaves_no_temporary_file(tmp_path, open_clips, tiny_model, ort_image,
                                                                      docker_client):
    if os.getuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0777", "tmpfs", str(disk)], check=True)
    try:
        earlier = disk / "t" / "container_9c2g" / "ort-tiny.en-fp32" / "cell.json"
        earlier.parent.mkdir(parents=True)
        earlier.write_text('{"earlier": true}\n')
        free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
        (disk / "filler").write_bytes(b"x" * (free - 3 * 4096))  # room for about three small files
        proc = run_cli("-m", "harness", "run", "--engines", "ort:fp32", "--sut", "t", "--cpuset", "0",
                       "--cores-list", "1", "--repeats", "1", "--memory-gb", "2", "--warmup", "0", "--audio-dir",
                       str(open_clips), "--results", str(disk), "--no-build", "--no-report", "--quiet-wait", "0")
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2, proc.stderr
        assert lines[-1].startswith(f"error: cannot write results to {disk}") and "Traceback" not in proc.stderr
        assert [p for p in disk.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".")] == []
        assert earlier.read_text() == '{"earlier": true}\n'
        assert all(p.stat().st_uid == os.getuid() for p in disk.rglob("*"))
        assert containers_left(docker_client) == []
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_image_build_failure_is_a_row_and_the_run_goes_on(tmp_path, open_clips, tiny_model, docker_client,
                                                         monkeypatch):
    import dataclasses

    from engines.registry import SPECS
    from harness.run.loop import run_comparison

    monkeypatch.setitem(SPECS, "ort", dataclasses.replace(SPECS["ort"], group="engine-no-such-group"))
    config = make_config(tmp_path, open_clips)
    records = run_comparison(config, build=True)   # with the gate's reference, run once beside it
    record = next(r for r in records if r["engine"] == "ort")
    assert record["status"] == "image_build_failed"
    assert "a build step failed (exit 2): error: no dependency group 'engine-no-such-group'" in record["error"]
    run = config.shape_dir(1) / "ort-tiny.en-fp32" / "round-1" / "run.json"
    assert json.loads(run.read_text())["status"] == "image_build_failed"


def tree_digest(root):
    import hashlib

    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def compose_command():
    import shutil

    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.fail("neither `docker compose` nor `docker-compose` is installed (scripts/ensure-docker.sh installs it)")


def test_compose_runs_one_engine_with_the_same_limits_and_no_world_writable_folder(tmp_path, open_clips, tiny_model,
                                                                                  ort_image, docker_client):
    """scripts/compose-run.sh makes the results folder for the container's user alone: the test makes no folder
    and chmods nothing; every folder on the way is closed to others and the container's files are its user's."""
    import stat

    out = tmp_path / "compose"
    cell = out / "ort-tiny.en-fp32"
    env = {**os.environ, "COMPOSE_RESULTS": str(out), "AUDIO_DIR": str(open_clips), "CPUSET": "0",
           "MEMORY_GB": "2", "MODEL": "tiny.en", "COMPOSE_PROJECT_NAME": "whisperbenchtest"}
    env.pop("PRECISION", None)
    env.pop("RUN_AS", None)
    config = subprocess.run([*compose_command(), "config"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert config.returncode == 0, config.stderr
    assert "network_mode: none" in config.stdout and "read_only: true" in config.stdout
    proc = subprocess.run([str(ROOT / "scripts" / "compose-run.sh"), "ort"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    runs_as = 1000 if os.getuid() == 0 else os.getuid()   # the image's unprivileged user, never root
    for folder in (out, cell):
        st = folder.stat()
        assert stat.S_IMODE(st.st_mode) & 0o022 == 0, f"{folder} is writable by others: {oct(st.st_mode)}"
    assert cell.stat().st_uid == runs_as
    written = list(cell.iterdir())
    assert written and all(p.is_file() and not p.is_symlink() and p.stat().st_uid == runs_as for p in written)
    summary = json.loads((cell / "inference_summary.json").read_text())
    assert summary["cpuset"] == [0] and summary["threads"] == 1 and summary["n_ok"] == 2
    from harness.run.time_v import read_time_file

    assert read_time_file(cell / "time.txt")["exit_status"] == 0
    cgroup = json.loads((cell / "cgroup_memory.json").read_text())
    assert cgroup["limit"] == str(2 * 2**30) and cgroup["peak_bytes"] > 0
    bad = subprocess.run([str(ROOT / "scripts" / "compose-run.sh"), "no-such-engine"], cwd=ROOT, env=env,
                         capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.strip() == "error: compose.yaml has no service no-such-engine"


def test_the_harness_and_dockerd_move_to_a_housekeeping_cpu_and_back(tmp_path, open_clips, tiny_model, ort_image):
    from harness.run.housekeeping import _daemon_pids
    from harness.run.loop import run_comparison

    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two CPUs")
    daemons = _daemon_pids()
    before = {pid: os.sched_getaffinity(pid) for pid in daemons}
    config = make_config(tmp_path, open_clips, cpuset="0-1", cores_list="1")
    [record] = run_comparison(config, build=False)
    assert record["status"] == "ok" and record["cpuset"] == "1"          # the cell off CPU 0
    plan = json.loads((config.sut_dir / "plan.json").read_text())
    assert plan["housekeeping"]["cpu"] == 0 and plan["housekeeping"]["pinned_daemon_threads"] > 0
    assert {pid: os.sched_getaffinity(pid) for pid in daemons} == before  # restored
    assert os.sched_getaffinity(0) == {0, 1}


def test_a_run_under_load_is_re_run_once_and_the_loaded_attempt_is_kept(tmp_path, open_clips, tiny_model, ort_image):
    """A busy loop on the cell's CPU during the first attempt: the run is re-run, the loaded one kept aside."""
    import threading
    import time

    from harness.run import loop

    config = make_config(tmp_path, open_clips, quiet_busy="0.3")
    stop = threading.Event()
    original = loop.wait_until_quiet
    calls = []

    def loaded_once(cpus, cfg):
        calls.append(1)
        if len(calls) == 1:  # load the CPU for the first attempt only, from a child process pinned there
            proc = subprocess.Popen(["taskset", "-c", "0", "python3", "-c", "while True: pass"])
            threading.Thread(target=lambda: (stop.wait(30), proc.kill()), daemon=True).start()
            time.sleep(1.5)
        else:
            stop.set()
            time.sleep(0.5)
        return original(cpus, cfg)

    loop.wait_until_quiet = loaded_once
    try:
        records = loop.run_comparison(config, build=False)
    finally:
        loop.wait_until_quiet = original
        stop.set()
    assert len(records) == 2 and (records[0]["quiet"]["loaded"] or records[0]["foreign_busy_share"] > 0.3)
    cell_dir = config.shape_dir(1) / "ort-tiny.en-fp32"
    assert (cell_dir / "round-1-loaded" / "run.json").is_file() and (cell_dir / "round-1" / "run.json").is_file()
    from harness.evidence.records import build_cell_record

    record = build_cell_record(cell_dir, scored=False)
    assert record["loaded_attempts"] and record["rounds"][0]["status"] == "ok"
