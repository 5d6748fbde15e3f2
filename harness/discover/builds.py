"""Model builds for `ort`: every way this project knows to turn the store's fp32 ONNX graphs into a
faster one, each written to `models/whisper-<name>/variants/<build>/` with a `variant.json` saying how.

A build holds what `ort` loads (encoder, cross-attention K/V and decoder-with-past graphs) plus the
side files; the first-step decoder is not copied (`ort` never loads it). Each recipe applies one
transform to the encoder and one to the decoder graphs (the cross-attention K/V graph follows the
decoder: its projections are the decoder's). A step that cannot run on this CPU or with this
onnxruntime is skipped, and its reason is kept for the report.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from engines.ort.model import CROSS_KV, DECODER_WITH_PAST, ENCODER
from engines.registry import BUILD_FILE, BUILDS_DIR

from ..models.onnx_format import SIDE_FILES
from ..models.onnx_transforms import FP32, TRANSFORMS

GRAPHS = (ENCODER, CROSS_KV, DECODER_WITH_PAST)
PORTABLE = "any x86-64 (onnxruntime picks kernels at run time)"


@dataclass(frozen=True)
class Recipe:
    name: str
    how: str
    encoder: str        # transform key for the encoder graph
    decoder: str        # transform key for the decoder and cross-attention K/V graphs
    session_level: str = "all"  # the graph optimisation level `ort` loads the build with


def host_isa() -> list[str]:
    from ..run.host import fingerprint

    return fingerprint()["isa"]


_NBITS_HOW = "MatMulNBits {bits}-bit symmetric weights in blocks of {block}, int8 compute (accuracy level 4)"
RECIPES: tuple[Recipe, ...] = (
    Recipe("opt-basic", "graph optimised offline at level basic (constant folding, redundant nodes); "
           "loaded at level basic", "opt-basic", "opt-basic", "basic"),
    Recipe("opt-extended", "graph optimised offline at level extended (plus onnxruntime's fusions); "
           "loaded at level extended", "opt-extended", "opt-extended", "extended"),
    Recipe("opt-all", "graph optimised offline at level all (plus layout transforms for this CPU); "
           "loaded at level all", "opt-all", "opt-all", "all"),
    Recipe("fused", "onnxruntime transformer optimizer (BART rules: attention, layer norm, GELU fusions)",
           "fused", "fused"),
    Recipe("int8-dynamic", "dynamic int8, operator form: MatMulInteger, weights per channel, activations "
           "per tensor at run time", "int8-dynamic", "int8-dynamic"),
    Recipe("int8-qdq", "int8 weights per channel in QDQ form (DequantizeLinear + MatMul)", "int8-qdq", "int8-qdq"),
    *(Recipe(f"q{bits}-b{block}", _NBITS_HOW.format(bits=bits, block=block), f"q{bits}-b{block}",
             f"q{bits}-b{block}") for bits in (8, 4) for block in (32, 64, 128)),
    Recipe("q8-b128-emb8", _NBITS_HOW.format(bits=8, block=128) + "; the token embedding int8 per row "
           "(Gather of int8 rows and their scales)", "q8-b128", "q8-b128-emb8"),
    Recipe("mixed-fp32enc-q8dec", "fp32 encoder, decoder " + _NBITS_HOW.format(bits=8, block=32), FP32, "q8-b32"),
    Recipe("mixed-q8enc-fp32dec", "encoder " + _NBITS_HOW.format(bits=8, block=32) + ", fp32 decoder",
           "q8-b32", FP32),
)
RECIPE_NAMES = tuple(r.name for r in RECIPES)


def targets(recipe: Recipe, isa: list[str]) -> str:
    """The instruction set a build is tied to: an `all`-level graph saved offline holds layout transforms
    chosen for this CPU; every other graph is portable and onnxruntime picks kernels when it loads."""
    if "opt-all" in (recipe.encoder, recipe.decoder):
        return "this CPU: " + (", ".join(isa) or "baseline x86-64")
    return PORTABLE


def generate(model_dir: Path, names: list[str] | None = None, force: bool = False,
             log=print) -> dict[str, dict]:
    """Write each requested build (all by default) under model_dir/variants/; returns name -> its
    variant.json, or {"skipped": reason} for a build that could not be made here."""
    src = model_dir / "onnx"
    config = json.loads((src / "config.json").read_text())
    store = json.loads((model_dir / "manifest.json").read_text()).get("created")
    isa = host_isa()
    out: dict[str, dict] = {}
    for recipe in RECIPES:
        if names and recipe.name not in names:
            continue
        dst = model_dir / BUILDS_DIR / recipe.name
        existing = json.loads((dst / BUILD_FILE).read_text()) if (dst / BUILD_FILE).is_file() else {}
        if existing.get("from_store") == store and not force:  # made from this very store: kept
            out[recipe.name] = existing
            continue
        out[recipe.name] = _make(recipe, src, dst, config, isa, log)
        out[recipe.name]["from_store"] = store
        if not out[recipe.name].get("skipped"):
            (dst / BUILD_FILE).write_text(json.dumps(out[recipe.name], indent=1) + "\n")
    return out


def _make(recipe: Recipe, src: Path, dst: Path, config: dict, isa: list[str], log) -> dict:
    work = dst.with_name(f".partial-{dst.name}-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    start = time.perf_counter()
    try:
        for graph in GRAPHS:
            key = recipe.encoder if graph == ENCODER else recipe.decoder
            TRANSFORMS[key](src / graph, work / graph, config)
    except Exception as exc:  # a step onnxruntime cannot do here: skipped with its reason
        shutil.rmtree(work, ignore_errors=True)
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
        log(f"build {recipe.name}: skipped ({reason})")
        return {"name": recipe.name, "how": recipe.how, "skipped": reason}
    keys = {recipe.encoder, recipe.decoder}
    if FP32 not in keys and all(_same_file(src / g, work / g) for g in GRAPHS):
        shutil.rmtree(work, ignore_errors=True)
        reason = "the step left every graph unchanged"
        log(f"build {recipe.name}: skipped ({reason})")
        return {"name": recipe.name, "how": recipe.how, "skipped": reason}
    for name in SIDE_FILES:
        shutil.copyfile(src / name, work / name)
    info = {"name": recipe.name, "how": recipe.how, "origin": "generated", "encoder": recipe.encoder,
            "decoder": recipe.decoder, "targets": targets(recipe, isa), "built_on_isa": isa,
            "session": {"graph_optimization_level": recipe.session_level},
            "build_s": round(time.perf_counter() - start, 1),
            "size_mb": round(sum(p.stat().st_size for p in work.iterdir()) / 1e6, 1)}
    (work / BUILD_FILE).write_text(json.dumps(info, indent=1) + "\n")
    shutil.rmtree(dst, ignore_errors=True)
    os.replace(work, dst)
    log(f"build {recipe.name}: {info['size_mb']} MB in {info['build_s']} s")
    return info


def _same_file(a: Path, b: Path) -> bool:
    if a.stat().st_size != b.stat().st_size:
        return False
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while chunk := fa.read(1 << 22):
            if chunk != fb.read(1 << 22):
                return False
    return True
