"""`harness fleet run`: two Docker engines on this machine, the local one and a second dockerd the test starts
on its own socket and data root."""
import json
import os
import shutil
import signal
import subprocess
import time

import pytest
from fleet_files import sut_table, write_fleet

from conftest import ROOT


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


@pytest.fixture
def second_engine(tmp_path_factory):
    """A second dockerd on its own socket, data root and bridge (scripts/second_dockerd.py)."""
    from second_dockerd import available, second_dockerd

    if (why := available()):
        pytest.skip(why)
    with second_dockerd(tmp_path_factory.mktemp("dockerd2")) as (socket, proc):
        yield {"socket": socket, "proc": proc}


@pytest.mark.docker
@pytest.mark.slow
def test_a_fleet_of_two_engines_runs_resumes_and_survives_a_stopped_engine(tmp_path, open_clips, tiny_model,
                                                                           ort_image, second_engine):
    import docker
    from harness.fleet.config import load_fleet
    from harness.fleet.run import run_fleet
    from harness.run.lock import lock_path

    fleet = load_fleet(write_fleet(
        tmp_path, "ort:int8",
        sut_table("one", "unix:///var/run/docker.sock", "0", 2, extra="price_per_core_hour = 0.05"),
        sut_table("two", f"unix://{second_engine['socket']}", "1", 2)))
    results = tmp_path / "results"

    def run():
        return {o["sut"]: o for o in run_fleet(fleet, results, ROOT / "models", open_clips, build=False)}

    # Both daemons report one ID (dockerd takes it from /etc/docker/key.json): each still has its own lock.
    infos = [docker.DockerClient(base_url=s.docker).info() for s in fleet.suts]
    assert lock_path(infos[0]) != lock_path(infos[1])
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


@pytest.fixture
def sshd_on_loopback(tmp_path, monkeypatch):
    """OpenSSH's sshd on 127.0.0.1 with keys of its own; HOME and PATH point the SSH clients (paramiko reads
    ~/.ssh/config, the OpenSSH client gets -F from a wrapper) at the host alias wbench-sut."""
    import socket

    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    if not os.path.exists(sshd) or not shutil.which("ssh-keygen") or not shutil.which("ssh"):
        pytest.skip("openssh-server or its client is not installed (scripts/ensure-sshd.sh)")
    if os.geteuid() != 0:
        pytest.skip("the loopback sshd logs in as root, the Docker socket's owner")
    home, etc = tmp_path / "home", tmp_path / "sshd"
    (home / ".ssh").mkdir(parents=True)
    etc.mkdir()
    for key in (etc / "host_key", home / ".ssh" / "id_ed25519"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    (etc / "authorized_keys").write_text((home / ".ssh" / "id_ed25519.pub").read_text())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (etc / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {etc / 'host_key'}\nPidFile {etc / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {etc / 'authorized_keys'}\nStrictModes no\nUsePAM no\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n")
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege-separation directory
    proc = subprocess.Popen([sshd, "-D", "-e", "-f", str(etc / "sshd_config")], stderr=open(etc / "log", "w"))
    host_key = (etc / "host_key.pub").read_text().split()
    (home / ".ssh" / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_key[0]} {host_key[1]}\n")
    config = home / ".ssh" / "config"
    config.write_text(f"Host wbench-sut\n  HostName 127.0.0.1\n  Port {port}\n  User root\n"
                      f"  IdentityFile {home / '.ssh' / 'id_ed25519'}\n  IdentitiesOnly yes\n"
                      f"  UserKnownHostsFile {home / '.ssh' / 'known_hosts'}\n  StrictHostKeyChecking yes\n"
                      "  BatchMode yes\n")
    wrapper = tmp_path / "bin" / "ssh"
    wrapper.parent.mkdir()
    wrapper.write_text(f"#!/bin/sh\nexec {shutil.which('ssh')} -F {config} \"$@\"\n")
    wrapper.chmod(0o755)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("PATH", f"{wrapper.parent}:{os.environ['PATH']}")
    for _ in range(100):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    yield port
    proc.terminate()
    proc.wait(30)


@pytest.mark.docker
@pytest.mark.slow
def test_a_sut_over_ssh_sends_runs_and_fetches_through_both_ssh_transports(tmp_path, open_clips, tiny_model,
                                                                           ort_image, docker_client,
                                                                           sshd_on_loopback):
    from harness.fleet.config import load_fleet
    from harness.fleet.run import run_fleet
    from harness.run.host import fingerprint

    results = tmp_path / "results"
    cell = results / "ssh" / "container_1c2g" / "ort-tiny.en-int8"

    def run(ssh_client: bool):
        for volume in docker_client.volumes.list(filters={"label": "org.whisper-bench.inputs"}):
            if volume.name.startswith("whisper-bench-audio-"):  # so that something crosses the SSH link
                volume.remove(force=True)
        shutil.rmtree(cell, ignore_errors=True)
        fleet_file = write_fleet(tmp_path, "ort:int8",
                                 sut_table("ssh", "ssh://wbench-sut", memory_gb=2,
                                           extra=f"ssh_client = {str(ssh_client).lower()}"),
                                 sut_table("nobody", "ssh://root@127.0.0.1:1"))
        return {o["sut"]: o for o in run_fleet(load_fleet(fleet_file), results, ROOT / "models", open_clips,
                                               build=False)}

    for ssh_client in (False, True):  # paramiko, then the OpenSSH client
        out = run(ssh_client)
        assert out["ssh"]["status"] == "ok" and out["ssh"]["cells_run"] == 1, out
        assert 0 < out["ssh"]["bytes_sent"] < 1e8  # the corpus only: the models volume was already there
        run_json = json.loads((cell / "round-1" / "run.json").read_text())
        assert run_json["status"] == "ok" and run_json["host"]["docker_endpoint"] == "ssh://wbench-sut"
        local = fingerprint()  # the same host read through a container: the same CPU facts
        assert {k: run_json["host"][k] for k in ("cpu_model", "isa", "smt", "transparent_hugepages", "cgroup")} \
            == {k: local[k] for k in ("cpu_model", "isa", "smt", "transparent_hugepages", "cgroup")}
        assert json.loads((cell / "round-1" / "inference_summary.json").read_text())["n_files"] == 2
        assert out["nobody"]["status"] == "failed" and "not reachable" in out["nobody"]["error"]
        assert "\n" not in out["nobody"]["error"]
