"""What a container writes cannot touch the host: hostile containers through the harness's own run path.

The images are the base image with a small shell entry point in place of an engine; each is registered as
an engine for the test, so `run_comparison` runs it exactly as it runs a real one.
"""
import dataclasses
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import ROOT, run_cli

pytestmark = [pytest.mark.docker]

# Every name the host used to write, chown or chmod in the container's folder, as a link to a host file.
LINKED = ("inference_per_file.json", "inference_per_file.csv", "cgroup_memory.json", "ort_profile_ops.csv",
          "container.log", "run.json", "metrics.json", "cell.json", ".run.json.tmp", ".container.log.tmp")
HOSTILE = """
out="${RESULTS_DIR:-/results}"
for name in %(linked)s; do ln -s %(target)s "$out/$name"; done
mkfifo "$out/inference_per_file.jsonl"            # blocked the host's line count for ever
truncate -s 2G "$out/time.txt"                    # a 2 GiB sparse file under a result name
echo '[1]' > "$out/inference_summary.json"
mkdir "$out/sub" && ln -s %(target)s "$out/sub/inference_summary.json"
head -c 16777216 /dev/zero | tr '\\0' x           # 16 MiB of output on one line
echo
echo "error: hostile container done"
"""
BAD_SUMMARY = """
out="${RESULTS_DIR:-/results}"
echo '[1]' > "$out/inference_summary.json"
"""
BENIGN = """
out="${RESULTS_DIR:-/results}"
sleep "${SLEEP_S:-0}"
echo '{"file": "a.wav", "text": "ok"}' > "$out/inference_per_file.jsonl"
printf '{"status": "ok", "total_processing_s": 0.5, "model_load_s": 0.1, "failures": 0}\\n' \
    > "$out/inference_summary.json"
"""


def build_script_image(client, base, tmp_path, name, script, entrypoint='["/bin/sh", "/entry.sh"]', env=""):
    ctx = tmp_path / f"ctx-{name}"
    ctx.mkdir()
    (ctx / "entry.sh").write_text(script)
    # /home/bench owned by the containers' user: a fleet's results volume mounted there starts owned by it
    (ctx / "Dockerfile").write_text(f"FROM {base}\nCOPY entry.sh /entry.sh\nRUN mkdir -p /home/bench && chown "
                                    f"1000:1000 /home/bench\n{env}\nENTRYPOINT {entrypoint}\n")
    client.images.build(path=str(ctx), tag=f"whisper-bench-{name}:latest", rm=True)
    return name


@pytest.fixture(scope="module")
def script_engines(docker_client, tmp_path_factory):
    """name -> image for: hostile, a `[1]` summary, a benign run, one whose entry point does not exist, and a
    benign one that sleeps first (for the signal test)."""
    from harness.run.images import ensure_base_image

    base = ensure_base_image(docker_client)
    tmp = tmp_path_factory.mktemp("images")
    secret = tmp_path_factory.mktemp("host") / "authorized_keys"
    hostile = HOSTILE % {"linked": " ".join(LINKED), "target": secret}
    names = [build_script_image(docker_client, base, tmp, "hostile", hostile),
             build_script_image(docker_client, base, tmp, "badsummary", BAD_SUMMARY),
             build_script_image(docker_client, base, tmp, "benign", BENIGN),
             build_script_image(docker_client, base, tmp, "nostart", BENIGN, entrypoint='["/no/such/entry"]'),
             build_script_image(docker_client, base, tmp, "sleeper", BENIGN, env="ENV SLEEP_S=6")]
    yield names, secret
    for name in names:
        docker_client.images.remove(f"whisper-bench-{name}:latest", force=True)


def register(monkeypatch, names):
    from engines.registry import SPECS

    for name in names:
        monkeypatch.setitem(SPECS, name, dataclasses.replace(SPECS["ort"], name=name))


def inputs(tmp_path):
    """A model folder and a corpus the scripts never read, readable by the containers' user."""
    model = tmp_path / "models" / "whisper-tiny.en"
    (model / "onnx").mkdir(parents=True)
    (model / "onnx" / "encoder.onnx").write_bytes(b"not read")
    (model / "manifest.json").write_text('{"files": {}}\n')
    audio = tmp_path / "audio"
    audio.mkdir()
    (audio / "a.wav").write_bytes(b"RIFF")
    for path in [tmp_path, *tmp_path.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return tmp_path / "models", audio


def make_config(tmp_path, engines, timeout="60"):
    from argparse import Namespace

    from harness.run.config import build_config

    models, audio = inputs(tmp_path)
    args = Namespace(cores_list="1", cpuset="0", sut="iso", memory_gb="1", engines=engines, model="tiny.en",
                     repeats="1", max_rounds="1", seed="7", warmup="0", timeout=timeout, heartbeat="5",
                     quiet_busy="1.0", quiet_wait="0", results=str(tmp_path / "results"),
                     models_dir=str(models), audio_dir=str(audio), engine_args=[])
    return build_config(args, env={})


LABEL = "org.whisper-bench.cell"


def mine(client):
    from harness.run.container import CONTROLLER_LABEL
    from harness.run.lock import controller_id

    return client.containers.list(all=True, filters={"label": f"{CONTROLLER_LABEL}={controller_id()}"})


def test_a_hostile_container_cannot_touch_the_host_and_the_comparison_goes_on(tmp_path, docker_client,
                                                                              script_engines, monkeypatch):
    from harness.run.loop import run_comparison
    from harness.run.outputs import MAX_LOG_BYTES, OUTPUTS
    from harness.run.state import state_dir

    names, secret = script_engines
    secret.write_text("ssh-ed25519 AAAA the only key\n")
    secret.chmod(0o600)
    if os.getuid() == 0:
        os.chown(secret, 4242, 4242)  # a chown back to the harness's user would show
    before = os.lstat(secret)
    register(monkeypatch, names)
    config = make_config(tmp_path, "hostile:fp32 badsummary:fp32 nostart:fp32 benign:fp32")
    start = time.monotonic()
    records = {r["engine"]: r for r in run_comparison(config, build=False)}
    took = time.monotonic() - start

    after = os.lstat(secret)
    assert secret.read_text() == "ssh-ed25519 AAAA the only key\n"
    assert (after.st_uid, after.st_gid, stat.S_IMODE(after.st_mode)) == \
        (before.st_uid, before.st_gid, stat.S_IMODE(before.st_mode))

    hostile = records["hostile"]
    assert hostile["status"] == "failed" and not hostile["timed_out"], hostile
    assert hostile["host_wall_s"] < config.timeout_s and took < 3 * config.timeout_s
    error = hostile["error"]
    assert "\n" not in error and error.startswith("the container's results were refused: "), error
    for refused in ("inference_summary.json", "inference_per_file.jsonl (a FIFO)", "inference_per_file.json (a link)",
                    "time.txt (2147483648 bytes, over the"):
        assert refused in error, error
    assert records["badsummary"]["status"] == "failed"
    assert records["badsummary"]["error"] == \
        "the container's results were refused: inference_summary.json (not a JSON object)"
    nostart = records["nostart"]
    assert nostart["status"] == "start_failed" and "\n" not in nostart["error"], nostart
    assert nostart["error"].startswith("the container could not be started: ")
    assert records["benign"]["status"] == "ok", records["benign"]  # the comparison went on

    results = tmp_path / "results"
    for path in results.rglob("*"):
        st = os.lstat(path)
        assert stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode), path
        assert st.st_uid == os.getuid() and not st.st_mode & 0o002, path  # no world-writable folder
        assert st.st_size <= 64 << 20, path
    hostile_dir = config.shape_dir(1) / "hostile-tiny.en-fp32" / "round-1"
    planted = {*LINKED, "inference_summary.json", "time.txt", "inference_per_file.jsonl"}
    host_written = {"container.log", "run.json", "metrics.json"}  # scoring may add metrics.json
    names = {p.name for p in hostile_dir.iterdir()}
    assert {"container.log", "run.json"} <= names and not names & (planted - host_written), names
    log = (hostile_dir / "container.log").read_bytes()
    assert len(log) <= MAX_LOG_BYTES and log.rstrip().endswith(b"error: hostile container done")
    assert json.loads((hostile_dir / "run.json").read_text())["status"] == "failed"
    assert not [p for p in state_dir(OUTPUTS).iterdir() if p.name.startswith(f"run-{os.getpid()}-")]
    assert mine(docker_client) == []


def test_nohup_keeps_the_harness_running_through_sighup(tmp_path, docker_client, script_engines):
    """A harness started with SIGHUP ignored (as `nohup` starts it) runs on when sent SIGHUP."""
    names, _ = script_engines
    models, audio = inputs(tmp_path)
    driver = textwrap.dedent(f"""
        import dataclasses, sys
        from engines.registry import SPECS
        SPECS["sleeper"] = dataclasses.replace(SPECS["ort"], name="sleeper")
        from harness.cli import main
        sys.exit(main(["run", "--engines", "sleeper:fp32", "--model", "tiny.en", "--sut", "hup", "--cpuset", "0",
                       "--cores-list", "1", "--repeats", "1", "--max-rounds", "1", "--memory-gb", "1", "--warmup",
                       "0", "--models-dir", "{models}", "--audio-dir", "{audio}", "--results",
                       "{tmp_path / 'results'}", "--no-build", "--no-report", "--quiet-wait", "0"]))
    """)

    def start(ignore_hup: bool):
        return subprocess.Popen([sys.executable, "-c", driver], cwd=ROOT, stderr=subprocess.PIPE, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGHUP,
                                                                 signal.SIG_IGN if ignore_hup else signal.SIG_DFL))

    for ignore_hup, code in ((True, 0), (False, 129)):
        proc = start(ignore_hup)
        deadline = time.time() + 120

        def sleeper_running():  # not the reference cell a comparison may run first
            return [c for c in mine(docker_client) if c.labels.get(LABEL) == "sleeper-tiny.en-fp32"]

        while not sleeper_running() and time.time() < deadline:
            time.sleep(0.2)
        assert sleeper_running(), "the container never started"
        proc.send_signal(signal.SIGHUP)
        try:
            _, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:  # left running, it would hold the engine for the tests after this one
                proc.kill()
                proc.wait()
        assert proc.returncode == code, err
        run = tmp_path / "results" / "hup" / "container_1c1g" / "sleeper-tiny.en-fp32" / "round-1" / "run.json"
        assert json.loads(run.read_text())["status"] == ("ok" if ignore_hup else "interrupted")
        assert mine(docker_client) == []


def _readable_copy_of_the_lock_code(dest: Path) -> str:
    """The modules the lock holder imports (the harness's and the Docker client's, as this interpreter finds
    them), copied into `dest` readable by all: the checkout and its venv may sit in a folder another user
    cannot enter (a home, a mktemp -d). Returns its PYTHONPATH."""
    import shutil
    import sysconfig

    probe = subprocess.run([sys.executable, "-c", "import sys, docker, harness.run.lock\n"
                            "print('\\n'.join(sorted({m.__file__ for m in list(sys.modules.values())\n"
                            "                         if getattr(m, '__file__', None)})))"],
                           cwd=ROOT, capture_output=True, text=True, check=True)
    roots = [ROOT, Path(sysconfig.get_paths()["purelib"]), Path(sysconfig.get_paths()["platlib"])]
    tops = {(ROOT, "harness"), (ROOT, "engines")}   # whole: the lock imports parts of them as it goes
    for file in map(Path, probe.stdout.split()):
        for root in roots:
            if file.is_relative_to(root):
                tops.add((root, file.relative_to(root).parts[0]))
    dest.mkdir(parents=True, exist_ok=True)
    for root, top in tops:
        if (root / top).is_dir():
            shutil.copytree(root / top, dest / top, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(root / top, dest / top)
    for folder in [dest, *dest.rglob("*")]:
        folder.chmod(folder.stat().st_mode | (0o755 if folder.is_dir() else 0o644))
    return str(dest)


def test_another_users_harness_holding_the_engine_stops_this_one_with_one_line(tmp_path, docker_client):
    """A throwaway user (useradd, in the docker group) holds the engine with the harness's own lock, from its
    own state folder; this user's `harness run` then prints one line naming that user and exits 2. The lock
    files are per user, so what stops it is the engine's abstract socket, whose holder the kernel names."""
    import grp
    import pwd
    import secrets
    import shutil

    if os.getuid() != 0:
        pytest.skip("creating a user and starting a process as it needs root")
    if not (shutil.which("useradd") and shutil.which("userdel") and shutil.which("runuser")):
        pytest.skip("useradd, userdel or runuser is not installed")
    python = "/usr/bin/python3"   # the venv's interpreter may sit in a folder (root's home) others cannot enter
    version = subprocess.run([python, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True,
                             text=True) if os.path.exists(python) else None
    if version is None or version.stdout.strip() != str(sys.version_info[:2]):
        pytest.skip(f"{python} is missing or not Python {sys.version_info[0]}.{sys.version_info[1]}")
    user = f"wbench-other-{secrets.token_hex(3)}"
    groups = ["--groups", "docker"] if "docker" in {g.gr_name for g in grp.getgrall()} else []
    subprocess.run(["useradd", "--create-home", "--shell", "/usr/sbin/nologin", *groups, user], check=True)
    holder_pid = proc = None
    try:
        uid = pwd.getpwnam(user).pw_uid
        path = _readable_copy_of_the_lock_code(Path(pwd.getpwnam(user).pw_dir) / "wbench-src")
        hold = textwrap.dedent("""
            import os, time, docker
            from harness.run.lock import harness_lock
            with harness_lock(docker.from_env(), "theirs"):
                print("held", os.getuid(), os.getpid(), flush=True)
                time.sleep(120)
        """)
        proc = subprocess.Popen(["runuser", "-u", user, "--", "env", f"PYTHONPATH={path}", python, "-c", hold],
                                cwd="/", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        held = proc.stdout.readline().split()
        assert held[:2] == ["held", str(uid)], proc.stderr.read() if proc.poll() is not None else held
        holder_pid = int(held[2])
        theirs = pwd.getpwnam(user).pw_dir + "/.local/state/whisper-bench/locks"
        assert os.stat(theirs).st_uid == uid   # their lock file, in their own state folder
        models, audio = inputs(tmp_path)
        ours = run_cli("-m", "harness", "run", "--engines", "ort:fp32", "--model", "tiny.en", "--sut", "ours",
                       "--cpuset", "0", "--cores-list", "1", "--repeats", "1", "--memory-gb", "1", "--warmup", "0",
                       "--models-dir", str(models), "--audio-dir", str(audio), "--results", str(tmp_path / "results"),
                       "--no-build", "--no-report", "--quiet-wait", "0")
        lines = ours.stderr.strip().splitlines()
        assert ours.returncode == 2 and len(lines) == 1, ours.stderr
        assert lines[0].startswith(f"error: another user's harness is using this Docker engine (user {user} "
                                   f"(uid {uid}), pid {holder_pid}): wait for it to finish"), lines[0]
        assert not (tmp_path / "results" / "ours").exists()
    finally:
        if holder_pid is not None:
            os.kill(holder_pid, signal.SIGKILL)   # runuser then exits with its child
        if proc is not None:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        subprocess.run(["userdel", "--remove", user], capture_output=True)
    from harness.run.lock import harness_lock

    with harness_lock(docker_client, "x"):  # free again once their harness is gone
        pass
