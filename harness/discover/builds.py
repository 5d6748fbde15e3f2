"""Model builds for `ort`: every way this project knows to turn the store's fp32 ONNX graphs into a
faster one, each written to `models/whisper-<name>/variants/<build>/` with a `variant.json` saying how.

A build holds what `ort` loads (encoder, cross-attention K/V and decoder-with-past graphs) plus the
side files; the first-step decoder is not copied (`ort` never loads it). Each recipe applies one
transform to the encoder and one to the decoder graphs (the cross-attention K/V graph follows the
decoder: its projections are the decoder's). A step that cannot run on this CPU or with this
onnxruntime is skipped, and its reason is kept for the report.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engines.ort.model import CROSS_KV, DECODER_WITH_PAST, ENCODER
from engines.registry import BUILD_FILE, BUILDS_DIR

from ..models.onnx_format import SIDE_FILES, quantize_int8_file

GRAPHS = (ENCODER, CROSS_KV, DECODER_WITH_PAST)
PORTABLE = "any x86-64 (onnxruntime picks kernels at run time)"
FP32 = "fp32"


@dataclass(frozen=True)
class Recipe:
    name: str
    how: str
    encoder: str        # transform key for the encoder graph
    decoder: str        # transform key for the decoder and cross-attention K/V graphs
    session_level: str = "all"  # the graph optimisation level `ort` loads the build with


def _levels():
    import onnxruntime as ort

    return {"basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}


def host_isa() -> list[str]:
    from ..run.host import fingerprint

    return fingerprint()["isa"]


def _copy(src: Path, dst: Path, _config: dict) -> None:
    shutil.copyfile(src, dst)


def _offline(level: str) -> Callable:
    def run(src: Path, dst: Path, _config: dict) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = _levels()[level]
        opts.optimized_model_filepath = str(dst)
        opts.intra_op_num_threads = 1
        ort.InferenceSession(str(src), opts, providers=["CPUExecutionProvider"])
    return run


def _fused(src: Path, dst: Path, config: dict) -> None:
    """onnxruntime's transformer optimizer, BART rules (Whisper's encoder-decoder layout): attention,
    layer norm, skip layer norm, bias and GELU fusions, without onnxruntime's own graph passes."""
    import logging

    from onnxruntime.transformers import optimizer

    logging.getLogger("onnxruntime.transformers").setLevel(logging.ERROR)
    model = optimizer.optimize_model(str(src), model_type="bart", num_heads=config["decoder_attention_heads"],
                                     hidden_size=config["d_model"], opt_level=0)
    model.save_model_to_file(str(dst), use_external_data_format=False)


def _nbits(bits: int, block: int) -> Callable:
    def run(src: Path, dst: Path, _config: dict) -> None:
        quantize_int8_file(src, dst, bits, block)
    return run


def _dynamic_qoperator(src: Path, dst: Path, _config: dict) -> None:
    """Dynamic int8 in operator form: MatMulInteger on int8 weights per output channel, activations
    quantised per tensor at run time (DynamicQuantizeLinear)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), per_channel=True, weight_type=QuantType.QInt8,
                     op_types_to_quantize=["MatMul"])


def _symmetric_int8(w, axis: int):
    """Symmetric int8 of a float32 matrix, one float32 scale per slice across `axis` (kept as a size-1
    axis): (int8 values, scales)."""
    import numpy as np

    scale = (np.maximum(np.abs(w).max(axis=axis, keepdims=True), 1e-12) / 127.0).astype(np.float32)
    return np.clip(np.round(w / scale), -127, 127).astype(np.int8), scale


def _qdq_per_channel(src: Path, dst: Path, _config: dict) -> None:
    """int8 weights per output channel in QDQ form: a DequantizeLinear (int8, one scale per column,
    symmetric) in front of each MatMul on a constant weight, which onnxruntime may fuse when it loads
    the graph or else run as a dequantise and an fp32 product. Written here: onnxruntime's weight-only
    quantiser makes 8-bit QDQ only for Gather, not for MatMul."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    done: dict[str, str] = {}
    for node in graph.node:
        if node.op_type != "MatMul" or node.input[1] not in inits:
            continue
        name = node.input[1]
        if name not in done:
            w = numpy_helper.to_array(inits[name]).astype(np.float32)
            if w.ndim != 2:
                continue
            q, scale = _symmetric_int8(w, axis=0)
            scale = scale.reshape(-1)
            graph.initializer.extend([numpy_helper.from_array(q, f"{name}_int8"),
                                      numpy_helper.from_array(scale, f"{name}_scale"),
                                      numpy_helper.from_array(np.zeros_like(scale, dtype=np.int8), f"{name}_zero")])
            graph.node.append(helper.make_node("DequantizeLinear", [f"{name}_int8", f"{name}_scale", f"{name}_zero"],
                                               [f"{name}_dequantized"], axis=1, name=f"{name}_DequantizeLinear"))
            done[name] = f"{name}_dequantized"
        node.input[1] = done[name]
    if not done:
        raise ValueError("no MatMul with a constant weight to quantise")
    used = {i for n in graph.node for i in n.input}
    for name in done:
        if name not in used:
            graph.initializer.remove(inits[name])
    _topological_save(model, dst)


def _int8_embedding(src: Path, dst: Path, config: dict) -> None:
    """The token embedding as int8 rows with one scale per row: the lookup gathers int8 rows and their
    scales, then casts and multiplies (standard operators). The logits' projection keeps its own weights
    (transposed at export, quantised by the step before), so only the lookup reads this table, and its
    fp32 copy (vocabulary x d_model x 4 bytes: 106 MB on base) leaves memory. A graph without the
    embedding (the cross-attention K/V) is copied."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    nodes, replaced = [], []
    for node in graph.node:
        nodes.append(node)
        table = inits.get(node.input[0]) if node.op_type == "Gather" and node.input else None
        if table is None or list(table.dims) != [config["vocab_size"], config["d_model"]]:
            continue
        q, scale = _symmetric_int8(numpy_helper.to_array(table).astype(np.float32), axis=1)
        name, out = node.input[0], node.output[0]
        graph.initializer.extend([numpy_helper.from_array(q, f"{name}_int8_rows"),
                                  numpy_helper.from_array(scale, f"{name}_row_scale")])  # (vocab, 1)
        node.input[0], node.output[0] = f"{name}_int8_rows", f"{out}_int8"
        nodes += [helper.make_node("Gather", [f"{name}_row_scale", node.input[1]], [f"{out}_scale"]),
                  helper.make_node("Cast", [f"{out}_int8"], [f"{out}_cast"], to=onnx.TensorProto.FLOAT),
                  helper.make_node("Mul", [f"{out}_cast", f"{out}_scale"], [out])]
        replaced.append(name)
    if not replaced:
        shutil.copyfile(src, dst)
        return
    del graph.node[:]
    graph.node.extend(nodes)
    used = {i for n in graph.node for i in n.input}
    for name in replaced:
        if name not in used:
            graph.initializer.remove(inits[name])
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))


def _then(first: Callable, second: Callable) -> Callable:
    """Two transforms in turn."""
    def run(src: Path, dst: Path, config: dict) -> None:
        middle = dst.with_name(dst.name + ".step1")
        first(src, middle, config)
        try:
            second(middle, dst, config)
        finally:
            middle.unlink(missing_ok=True)
    return run


def _topological_save(model, dst: Path) -> None:
    """Put each appended DequantizeLinear before its first consumer (ONNX requires sorted nodes) and save."""
    import onnx

    nodes = list(model.graph.node)
    dq = {n.output[0]: n for n in nodes if n.op_type == "DequantizeLinear"}
    ordered, placed = [], set()
    for node in nodes:
        if node.op_type == "DequantizeLinear" and node.output[0] in dq:
            continue
        for inp in node.input:
            if inp in dq and inp not in placed:
                ordered.append(dq[inp])
                placed.add(inp)
        ordered.append(node)
    del model.graph.node[:]
    model.graph.node.extend(ordered)
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))


TRANSFORMS: dict[str, Callable] = {
    FP32: _copy,
    "opt-basic": _offline("basic"), "opt-extended": _offline("extended"), "opt-all": _offline("all"),
    "fused": _fused, "int8-dynamic": _dynamic_qoperator, "int8-qdq": _qdq_per_channel,
    **{f"q{bits}-b{block}": _nbits(bits, block) for bits in (8, 4) for block in (32, 64, 128)},
    "q8-b128-emb8": _then(_nbits(8, 128), _int8_embedding),
}

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


def import_user_builds(variants_dir: Path, model_dir: Path, log=print) -> dict[str, dict]:
    """Each folder under variants_dir becomes `user-<folder>` in the store, with a variant.json when it has
    none. Only regular files are taken: a link (to a folder or a file) is skipped with a line and never
    followed, and the user's files are never changed (hard-linked when already readable by everyone on the
    same file system, else copied). Nothing else is checked here: a folder `ort` cannot load is a failed
    row of the ranking, with its reason."""
    out = {}
    for folder in sorted(variants_dir.iterdir()):
        if folder.is_symlink() or not folder.is_dir():
            if folder.is_symlink():
                log(f"{folder}: skipped: a link (builds are taken from real folders only)")
            continue
        name = folder.name if folder.name.startswith("user-") else f"user-{folder.name}"
        dst = model_dir / BUILDS_DIR / name
        if dst.resolve() != folder.resolve():
            shutil.rmtree(dst, ignore_errors=True)
            dst.mkdir(parents=True)
            for file in sorted(folder.iterdir()):
                problem = _take_file(file, dst / file.name)
                if problem:
                    log(f"build {name}: {file.name} skipped: {problem}")
        info = json.loads((dst / BUILD_FILE).read_text()) if (dst / BUILD_FILE).is_file() else {}
        info = {"how": "the user's own build", "targets": "unknown (the user's build)", **info,
                "name": name, "origin": f"user: {folder.name}",
                "size_mb": round(sum(p.stat().st_size for p in dst.iterdir() if p.is_file()) / 1e6, 1)}
        (dst / BUILD_FILE).unlink(missing_ok=True)  # a hard link to the user's own file: never write through it
        (dst / BUILD_FILE).write_text(json.dumps(info, indent=1) + "\n")
        log(f"build {name}: taken from {folder}")
        out[name] = info
    return out


def _take_file(src: Path, dst: Path) -> str | None:
    """One of the user's files into the store, never through a link; what stood in the way, or None."""
    try:
        fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        return "a link (never followed)" if exc.errno == errno.ELOOP else (exc.strerror or str(exc))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        if st.st_mode & 0o444 == 0o444:  # the containers can read it as it is: share it, change nothing
            try:
                os.link(f"/proc/self/fd/{fd}", dst, follow_symlinks=True)
                return None
            except OSError:
                pass  # another file system (or no /proc): a copy
        with os.fdopen(os.dup(fd), "rb") as source, open(dst, "xb") as target:
            shutil.copyfileobj(source, target, 1 << 22)
        os.chmod(dst, 0o644)  # the store's own copy
        return None
    finally:
        os.close(fd)
