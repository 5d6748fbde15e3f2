"""A fleet reaches its engines only over transports that protect them, unless the fleet file says otherwise
(and the results then say so too); inputs are named by content and re-hashed on the SUT; nothing tracked
names a user or a host path."""
import json
import socket

import pytest
from fleet_files import sut_table, write_fleet
from test_isolation import inputs, mine, register, script_engines  # noqa: F401  (script_engines: a fixture)

from conftest import ROOT


def tcp_fleet(tmp_path, port: int, extra: str = ""):
    """A fleet file of one SUT on a Docker engine at tcp://127.0.0.1:<port>."""
    return write_fleet(tmp_path, "benign:fp32", sut_table("plain", f"tcp://127.0.0.1:{port}", memory_gb=1,
                                                          extra=extra))


def test_plain_tcp_is_refused_unless_the_fleet_file_says_insecure(tmp_path, monkeypatch):
    from harness.errors import UserError
    from harness.fleet.config import load_fleet

    for extra in ("", "tls_verify = false\ntls_ca = '~/.docker/ca.pem'"):
        if extra:
            (tmp_path / ".docker").mkdir(exist_ok=True)
            (tmp_path / ".docker" / "ca.pem").write_text("CA")
        monkeypatch.setenv("HOME", str(tmp_path))
        with pytest.raises(UserError) as exc:
            load_fleet(tcp_fleet(tmp_path, 2375, extra=extra))
        line = str(exc.value)
        assert "\n" not in line and "[sut.plain]: tcp://127.0.0.1:2375 without verified TLS" in line
        assert "insecure = true" in line
    fleet = load_fleet(tcp_fleet(tmp_path, 2375, extra="insecure = true"))
    assert fleet.suts[0].insecure
    # `~` in the TLS files is expanded, and a TLS engine needs no `insecure`
    tls = "tls_ca = '~/.docker/ca.pem'\ntls_cert = '~/.docker/ca.pem'\ntls_key = '~/.docker/ca.pem'"
    [sut] = load_fleet(tcp_fleet(tmp_path, 2376, extra=tls)).suts
    assert sut.tls_ca == str(tmp_path / ".docker" / "ca.pem") and not sut.insecure
    with pytest.raises(UserError, match="insecure = true applies only to a tcp:// engine without verified TLS"):
        load_fleet(tcp_fleet(tmp_path, 2376, extra=tls + "\ninsecure = true"))
    with pytest.raises(UserError, match="tls_ca = '.*/missing.pem': no such file"):
        load_fleet(tcp_fleet(tmp_path, 2376, extra="tls_ca = '~/missing.pem'"))


def test_endpoints_and_errors_are_reduced_for_tracked_files():
    from harness.redact import endpoint_alias, repo_path, scrub

    assert endpoint_alias("ssh://bench@epyc.example:2222") == "ssh://epyc.example"
    assert endpoint_alias("tcp://10.0.0.5:2376") == "tcp://10.0.0.5"
    assert endpoint_alias("unix:///home/alice/.docker/run/docker.sock") == "unix://docker.sock"
    assert scrub("ssh: bench@epyc.example: Permission denied (/home/alice/.ssh/id_ed25519)") == \
        "ssh: epyc.example: Permission denied (/home/~/.ssh/id_ed25519)"
    assert scrub(f"cannot read {ROOT}/models/x and /root/.ssh/config") == "cannot read models/x and ~/.ssh/config"
    assert repo_path(ROOT / "audio" / "synth") == "audio/synth" and repo_path("/srv/corpus") == "<outside>/corpus"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def tcp_engine(tmp_path_factory):
    """A second dockerd that also listens on plain tcp:// on the loopback."""
    from second_dockerd import available, second_dockerd

    if (why := available()):
        pytest.skip(why)
    import time

    port = free_port()
    with second_dockerd(tmp_path_factory.mktemp("dockerd-tcp"), hosts=(f"tcp://127.0.0.1:{port}",)) as (sock, _):
        deadline = time.time() + 60  # dockerd opens a plain tcp:// listener after a warning and a pause
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.5)
        yield port, sock


@pytest.mark.docker
def test_an_insecure_tcp_engine_runs_marked_with_inputs_rehashed_there(tmp_path, docker_client, script_engines,  # noqa: F811
                                                                      tcp_engine, monkeypatch):
    import docker
    from harness.fleet import remote
    from harness.fleet.config import load_fleet
    from harness.fleet.run import run_sut

    names, _ = script_engines
    register(monkeypatch, names)
    port, sock = tcp_engine
    models, audio = inputs(tmp_path)
    fleet = load_fleet(tcp_fleet(tmp_path, port, extra="insecure = true"))
    results = tmp_path / "results"

    first = run_sut(fleet.suts[0], fleet, results, models, audio, build=False)
    # the cell ran (the comparison may add a reference cell whose image is not on either engine here)
    assert first["cells_run"] >= 1 and "benign" not in first["error"], first
    assert first["endpoint"] == "tcp://127.0.0.1" and "without verified TLS" in first["insecure"]
    round_dir = results / "plain" / "container_1c1g" / "benign-tiny.en-fp32" / "round-1"
    run = json.loads((round_dir / "run.json").read_text())
    assert run["status"] == "ok" and run["host"]["docker_insecure"] == first["insecure"]
    assert run["host"]["docker_endpoint"] == "tcp://127.0.0.1"
    assert json.loads((round_dir / "inference_summary.json").read_text())["status"] == "ok"  # fetched back

    sut = docker.DockerClient(base_url=f"unix://{sock}")
    volumes = [v.name for v in sut.volumes.list()]
    files = remote.audio_files(audio)
    assert remote.input_volume("audio", files) in volumes and all(v.startswith("whisper-bench-") for v in volumes)
    assert mine(sut) == []  # helper and cell containers removed
    # a file changed in the volume on the SUT is found by the re-hash and sent again before use
    tamper = sut.containers.run("whisper-bench-benign:latest", ["sh", "-c", "echo x > /v/a.wav"],
                                entrypoint=[], user="0", remove=True,
                                volumes={remote.input_volume("audio", files): {"bind": "/v", "mode": "rw"}})
    assert tamper == b""
    assert remote.volume_hashes(sut, remote.input_volume("audio", files), "whisper-bench-benign:latest") != files
    (results / "plain" / "container_1c1g").rename(tmp_path / "first-run")  # so that the cell runs again
    second = run_sut(fleet.suts[0], fleet, results, models, audio, build=False)
    assert "benign" not in second["error"] and 0 < second["bytes_sent"] < 100_000, second  # one file, not all
    assert remote.volume_hashes(sut, remote.input_volume("audio", files), "whisper-bench-benign:latest") == files


@pytest.mark.parametrize("var,value", [("SUT_NAME", ".."), ("SUT_NAME", "a/b"), ("MODEL", "../tiny.en"),
                                       ("MODEL", ".hidden")])
def test_model_and_sut_names_that_are_not_safe_folder_names_are_one_line(var, value):
    from argparse import Namespace

    from harness.errors import UserError
    from harness.run.config import build_config

    with pytest.raises(UserError) as exc:
        build_config(Namespace(cores_list="1"), env={var: value})
    assert str(exc.value).startswith(f"{var}={value!r}: use letters, digits")


def test_the_plan_names_its_folders_relative_to_the_repository(tmp_path):
    from argparse import Namespace

    from harness.run.config import build_config

    config = build_config(Namespace(cores_list="1", audio_dir=str(tmp_path / "corpus")), env={})
    plan = config.as_dict()
    assert (plan["results_dir"], plan["models_dir"], plan["audio_dir"]) == ("results", "models", "<outside>/corpus")
    assert str(ROOT) not in json.dumps(plan)


def test_tracked_results_hold_no_home_path_user_name_or_user_at():
    import getpass
    import subprocess

    patterns = ["/home/", "/root/", "/Users/", str(ROOT), r"[A-Za-z0-9._-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+",
                rf"\b{getpass.getuser()}\b" if getpass.getuser() != "root" else "/root\\b"]
    proc = subprocess.run(["git", "grep", "-InE", "|".join(patterns), "--", "results", "examples"], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 1 and proc.stdout == "", proc.stdout[:2000]  # 1: nothing found
