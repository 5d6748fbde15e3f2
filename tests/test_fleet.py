"""`harness fleet run`: two Docker engines on this machine, the local one and a second dockerd the test starts
on its own socket and data root."""
import json
import os
import shutil
import signal
import subprocess
import time

import pytest

from conftest import ROOT

FLEET = """
[defaults]
model = "tiny.en"
engines = "ort:int8"
repeats = 1
warmup = 0

[sut.one]
docker = "unix:///var/run/docker.sock"
cpuset = "0"
memory_gb = 2
cores_list = "1"
price_per_core_hour = 0.05

[sut.two]
docker = "unix://{socket}"
cpuset = "1"
memory_gb = 2
cores_list = "1"
"""


def test_fleet_file_errors_are_one_line(tmp_path):
    from harness.errors import UserError
    from harness.fleet.config import load_fleet

    path = tmp_path / "fleet.toml"
    path.write_text("[sut.a]\ncpuset = '0'\n")
    with pytest.raises(UserError, match=r"\[sut.a\] needs exactly one of docker"):
        load_fleet(path)
    path.write_text("[sut.a]\ndocker = 'unix:///x'\ncpus = 3\n")
    with pytest.raises(UserError, match=r"\[sut.a\] has unknown key\(s\) cpus"):
        load_fleet(path)
    with pytest.raises(UserError, match="does not exist"):
        load_fleet(tmp_path / "none.toml")
    fleet = load_fleet(ROOT / "fleet.example.toml")
    assert [s.name for s in fleet.suts] == ["local"] and fleet.defaults["engines"]


BRIDGE = "wbench-test0"


@pytest.fixture
def second_engine(tmp_path_factory):
    """A second dockerd: its own socket, data root, exec root and bridge. Not `--bridge none`: a daemon
    started so removes the host's docker0, which the first engine's image builds need."""
    if not shutil.which("dockerd") or not shutil.which("ip"):
        pytest.skip("dockerd or ip is not installed")
    root = tmp_path_factory.mktemp("dockerd2")
    socket = root / "docker.sock"
    subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True)
    for cmd in (["ip", "link", "add", BRIDGE, "type", "bridge"],
                ["ip", "addr", "add", "172.31.251.1/24", "dev", BRIDGE], ["ip", "link", "set", BRIDGE, "up"]):
        subprocess.run(cmd, check=True, capture_output=True)
    log = open(root / "dockerd.log", "w")
    proc = subprocess.Popen(["dockerd", "--data-root", str(root / "data"), "--exec-root", str(root / "exec"),
                             "-H", f"unix://{socket}", "--pidfile", str(root / "dockerd.pid"), "--bridge", BRIDGE,
                             "--iptables=false", "--ip-masq=false"], stdout=log, stderr=log)
    for _ in range(100):
        if socket.exists():
            break
        time.sleep(0.1)
    assert socket.exists(), (root / "dockerd.log").read_text()[-2000:]
    yield {"socket": socket, "proc": proc}
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True)
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.docker
@pytest.mark.slow
def test_a_fleet_of_two_engines_runs_resumes_and_survives_a_stopped_engine(tmp_path, open_clips, tiny_model,
                                                                           ort_image, second_engine):
    from harness.fleet.config import load_fleet
    from harness.fleet.run import run_fleet

    fleet_file = tmp_path / "fleet.toml"
    fleet_file.write_text(FLEET.format(socket=second_engine["socket"]))
    fleet = load_fleet(fleet_file)
    results = tmp_path / "results"

    def run():
        return {o["sut"]: o for o in run_fleet(fleet, results, ROOT / "models", open_clips, build=False)}

    first = run()
    assert first["one"]["status"] == "ok" and first["two"]["status"] == "ok", first
    assert first["two"]["bytes_sent"] > 1e6 and first["two"]["cells_run"] == 1
    for sut in ("one", "two"):
        summary = results / sut / "container_1c2g" / "ort-tiny.en-int8" / "round-1" / "inference_summary.json"
        assert json.loads(summary.read_text())["status"] == "ok"
    run_json = json.loads((summary.parent / "run.json").read_text())
    assert run_json["cpuset"] == "1" and run_json["host"]["docker_endpoint"].endswith("docker.sock")
    text = (results / "RESULTS.md").read_text()
    assert "## Across SUTs" in text and "ort-tiny.en-int8: cheapest on" in text

    again = run()  # everything is there: nothing is sent and no cell runs again
    assert all(o["status"] == "ok" and o["bytes_sent"] == 0 and o["cells_run"] == 0 for o in again.values()), again

    os.kill(second_engine["proc"].pid, signal.SIGTERM)
    second_engine["proc"].wait(60)
    shutil.rmtree(results / "one" / "container_1c2g")  # so that the first SUT has a cell to run
    third = run()
    assert third["one"]["status"] == "ok" and third["one"]["cells_run"] == 1
    assert third["two"]["status"] == "failed" and "not reachable" in third["two"]["error"]
    assert json.loads((results / "fleet.json").read_text())["suts"][1]["status"] == "failed"
