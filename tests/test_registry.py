"""The engine spec is the one source: plan, compose, README, Makefile extras and the report follow it."""
import dataclasses
import json
import subprocess
import sys
from argparse import Namespace

import numpy as np
import pytest

from conftest import ROOT, write_wav
from engines import registry
from engines.base import Engine, FileResult
from harness import generated
from harness.report import build_report
from harness.run.config import build_config, parse_engines, plan_cells


class InstantEngine(Engine):
    """A throwaway engine: its transcript is the clip's length, so the runner can be measured alone."""
    name = "instant"

    def load(self) -> None:
        pass

    def transcribe(self, audio: np.ndarray) -> FileResult:
        return FileResult(text=f"{len(audio)} samples", n_tokens=1)


INSTANT = registry.EngineSpec("instant", "test_registry:InstantEngine", {"fp32": "ct2", "int8": "ct2"},
                              "engine-instant", "a test engine")


@pytest.fixture
def with_instant(monkeypatch):
    monkeypatch.setitem(registry.SPECS, "instant", INSTANT)
    return INSTANT


def test_checked_in_files_match_the_specs():
    proc = subprocess.run([sys.executable, "-m", "harness.generated", "--check"], cwd=ROOT, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stdout
    assert generated.stale() == []


def test_a_new_spec_reaches_plan_compose_readme_and_report(with_instant, tmp_path):
    from results_fixture import make_cell

    assert ("instant", "int8") in parse_engines("instant")
    args = Namespace(**{k: None for k in ("cores_list", "sut", "memory_gb", "model", "repeats", "max_rounds", "seed",
                                          "warmup", "timeout", "heartbeat", "quiet_busy", "quiet_wait", "results",
                                          "models_dir", "audio_dir")}, cpuset="0", engines="instant:int8",
                     engine_args=[])
    assert [c.key() for c in plan_cells(build_config(args, env={}))] == ["instant:int8@1"]
    compose = generated.compose_text()
    assert "  instant:\n" in compose and "ENGINE_GROUP: engine-instant" in compose
    assert "| `instant` | a test engine | fp32 (ct2), int8 (ct2) |" in generated.engine_table()
    assert generated.stale() == [generated.COMPOSE, generated.ENGINE_DOC]  # the check catches the drift
    assert "engine-instant" in registry.host_extras()
    make_cell(tmp_path / "r", "container_1c4g", "instant-tiny.en-int8", rtf=0.01)
    [row] = build_report(tmp_path / "r", tmp_path / "R.md").rows
    assert row["engine"] == "instant" and row["status"] == "ok"


def test_the_runner_refuses_a_variant_the_spec_does_not_have(with_instant):
    with pytest.raises(ValueError, match="instant supports precision fp32, int8, not 'fp16'"):
        INSTANT.check_variant("fp16")
    with pytest.raises(ValueError, match="default variant"):
        dataclasses.replace(INSTANT, default_variant="bf16")


def test_a_failed_run_says_what_failed_and_where_besides_no_file_transcribed(with_instant, tmp_path, capsys):
    from engines import runner

    audio = tmp_path / "audio"
    audio.mkdir()
    (audio / "broken.wav").write_bytes(b"RIFF not a wave file")
    (audio / "empty.flac").write_bytes(b"")
    argv = ["instant", "--model-dir", str(tmp_path), "--audio-dir", str(audio), "--out", str(tmp_path / "out"),
            "--threads", "1", "--warmup", "0"]
    assert runner.main(argv) == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("instant ") and "threads=1: 0 runs ok, 2 failed (broken.wav, empty.flac: each error in " \
        "inference_per_file.csv), no file transcribed" in last
    write_wav(audio / "ok.wav", np.zeros(1600, dtype=np.float32), 16000)
    assert runner.main(argv) == 0
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "1 runs ok, 2 failed (broken.wav, empty.flac: " in last and last.endswith(", RTF " + last.split("RTF ")[-1])
    assert float(last.split("RTF ")[-1]) > 0


def test_runner_cost_is_linear_in_the_corpus(with_instant, tmp_path, monkeypatch):
    """Thousands of files: each row is appended once, the aggregate files are written once."""
    from engines import runner

    audio = tmp_path / "audio"
    audio.mkdir()
    clip = np.zeros(160, dtype=np.float32)
    for i in range(3000):
        write_wav(audio / f"{i:05d}.wav", clip, 16000)
    writes = []
    real = runner.write_atomic
    monkeypatch.setattr(runner, "write_atomic", lambda path, text: (writes.append(path.name), real(path, text)))
    args = runner.parse_args(["instant", "--model-dir", str(tmp_path), "--audio-dir", str(audio), "--out",
                              str(tmp_path / "out"), "--threads", "1", "--warmup", "0"])
    summary = runner.run(args)
    assert summary["n_ok"] == 3000 and summary["status"] == "ok"
    assert sorted(writes) == sorted(["inference_summary.json", "inference_per_file.csv", "inference_per_file.json",
                                     "inference_summary.json"])
    lines = (tmp_path / "out" / "inference_per_file.jsonl").read_text().splitlines()
    assert len(lines) == 3000 and json.loads(lines[-1])["file"] == "02999.wav"
    assert summary["decoding_applied"]["max_new_tokens"] == 224


def test_a_source_build_group_tells_the_image_what_to_compile_and_with_what():
    import subprocess
    import sys

    from conftest import ROOT

    def req(*args):
        return subprocess.run([sys.executable, str(ROOT / "docker" / "requirements.py"), *args],
                              capture_output=True, text=True, check=True).stdout.split("\n")

    group = "engine-whisper-cpp-native"
    assert req(group)[0] == "--no-binary pywhispercpp" and "pywhispercpp==1.5.1" in req(group)
    assert "g++" in req("--apt", group)[0].split() and req("--apt-runtime", group)[0] == "libgomp1"
    assert any(line.startswith("CMAKE_ARGS='-DGGML_NATIVE=ON") for line in req("--env", group))
    assert req("--apt", "engine-ort")[0] == "" and req("engine-ort")[0] != "--no-binary"


def test_torch_comes_from_pytorchs_cpu_index_which_a_user_can_change(monkeypatch):
    import subprocess
    import sys

    from conftest import ROOT

    def torch_req(group):
        return subprocess.run([sys.executable, str(ROOT / "docker" / "requirements.py"), "--torch", group],
                              capture_output=True, text=True, check=True).stdout.split()

    monkeypatch.delenv("TORCH_INDEX_URL", raising=False)
    assert torch_req("engine-hf") == ["--extra-index-url", "https://download.pytorch.org/whl/cpu", "torch==2.13.0"]
    assert torch_req("engine-openai-whisper") == torch_req("prepare") == torch_req("engine-hf")
    assert torch_req("engine-ort") == []
    monkeypatch.setenv("TORCH_INDEX_URL", "https://download.pytorch.org/whl/cu128")
    assert torch_req("prepare")[1] == "https://download.pytorch.org/whl/cu128"
    make = subprocess.run(["make", "-n", "-W", "Makefile", "venv"], cwd=ROOT, capture_output=True, text=True)
    assert "--extra-index-url https://download.pytorch.org/whl/cu128 torch==2.13.0" in make.stdout
