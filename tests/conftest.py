import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
SHORT_TEXT = "The quick brown fox jumps over the lazy dog while the engines are compared fairly."
LONG_TEXT = " ".join([
    "The harness starts one container for every engine and every core count.",
    "Each container is pinned to a fixed set of processors and given a memory limit.",
    "A benchmark that cannot be repeated tells us very little about the next machine.",
    "The encoder turns thirty seconds of sound into a sequence of hidden states.",
    "The decoder writes one token at a time and keeps a cache of what it has seen.",
    "Long recordings are cut into windows that follow each other without gaps.",
    "Good measurements report the median, the spread and the number of runs.",
    "Memory use is read from the operating system, not estimated from model size.",
    "Fair comparisons use the same audio, the same settings and the same hardware.",
])


@pytest.fixture(scope="session")
def tiny_model() -> Path:
    from harness.models.store import prepare

    return prepare("tiny.en", MODELS)


@pytest.fixture(scope="session")
def clips(tmp_path_factory) -> Path:
    """A short (< 30 s) and a long-form (> 30 s) synthesized clip, references beside them."""
    from harness.audio.synth import synthesize

    root = tmp_path_factory.mktemp("clips")
    synthesize(SHORT_TEXT, root / "short.wav")
    (root / "short.txt").write_text(SHORT_TEXT)
    synthesize(LONG_TEXT, root / "long.wav", voice="en-gb", speed=150)
    (root / "long.txt").write_text(LONG_TEXT)
    return root


@pytest.fixture(scope="session")
def docker_client():
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "ensure-docker.sh")], capture_output=True, text=True)
    assert proc.returncode == 0, f"Docker could not be brought up: {proc.stderr}"
    from harness.run.images import docker_client as connect

    return connect()


@pytest.fixture(scope="session")
def ort_image(docker_client):
    """The ort engine image, built from the local (or registry) base exactly as the harness does."""
    from harness.run.images import build_image, ensure_base_image, stage_build_inputs

    base = ensure_base_image(docker_client)
    stage_build_inputs({"engine-ort"})
    log = ROOT / "results" / "test-logs" / "image-ort.log"
    return build_image(docker_client, "ort", "engine-ort", base, log)


@pytest.fixture(scope="session")
def open_clips(clips):
    """The test clips, readable by the containers' unprivileged user (pytest's folders are 0700)."""
    for path in [clips, *clips.iterdir()]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return clips


def run_cli(*args: str, check: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, check=check)


def write_wav(path: Path, audio: np.ndarray, sr: int) -> Path:
    import soundfile as sf

    sf.write(str(path), audio, sr)
    return path


def have(tool: str) -> bool:
    return shutil.which(tool) is not None
