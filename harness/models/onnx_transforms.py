"""ONNX graph transforms for `ort` builds: each takes a graph file and writes a transformed one (offline
optimisation at a level, onnxruntime's transformer fusions, dynamic int8 and QDQ forms, MatMulNBits at a
bit width and block, an int8 token embedding). `harness discover` combines them into recipes
(discover/builds.py); they live with the model store because they are model formats, not discovery.
"""
from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from .onnx_format import int8_embedding_file, quantize_dynamic_file, quantize_int8_file, symmetric_int8

FP32 = "fp32"


def _levels():
    import onnxruntime as ort

    return {"basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}


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
    quantize_dynamic_file(src, dst)


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
            q, scale = symmetric_int8(w, axis=0)
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
    "q8-b128-emb8": _then(_nbits(8, 128), int8_embedding_file),
}

