"""ONNX formats: fp32 exported with optimum (encoder, decoder, decoder-with-past), the cross-attention
K/V graph `cross_kv_model.onnx` built from the same weights (so `ort` never loads the first-step
decoder), every attention `ort` runs as one MultiHeadAttention node (onnx_attention.py), and int8:
the encoder dynamic int8 per channel, the decoders 8-bit block-wise weights (MatMulNBits, blocks of 32)
and their token embedding int8 rows.

Heavy imports stay inside functions: this module runs only under `models prepare`.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from engines.ort.model import CROSS_KV, DECODER_WITH_PAST, ENCODER, SELF_ATTENTION_BIAS

# What the `ort` engine loads; optimum's names.
ONNX_FILES = (ENCODER, "decoder_model.onnx", DECODER_WITH_PAST)
# Small text files the ONNX folders carry so each folder is self-contained for an engine.
SIDE_FILES = ("config.json", "generation_config.json", "tokenizer.json", "preprocessor_config.json")


def export_onnx(hf_dir: Path, out_dir: Path) -> None:
    import warnings

    from optimum.exporters.onnx import main_export
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    # Separate decoder and decoder-with-past (no merge): ORT's dynamic int8 does not reach into
    # the merged decoder's If-subgraphs, and the plain pair is simpler to drive.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's warnings are about shapes the export fixes anyway
        main_export(str(hf_dir), output=str(out_dir), task="automatic-speech-recognition-with-past",
                    no_post_process=True, do_validation=False, device="cpu")
    _keep_only(out_dir, hf_dir)


# int8, decoders (and the cross-attention K/V): every MatMul with a constant weight becomes MatMulNBits,
# 8-bit symmetric weights in blocks of INT8_BLOCK along the reduction axis, computed in int8 with activations
# quantised per block at run time (accuracy level 4), like CTranslate2's int8. Measured on whisper-base,
# 9.8 min corpus, 2 threads, the whole model quantised one way: dynamic per-channel int8 (activations per
# tensor) gave WER +1.03 points over fp32; blocks of 32 gave +0.00, 64 -0.12, 128 +0.28.
INT8_BLOCK = 32
INT8_ACCURACY_LEVEL = 4
# int8, encoder: dynamic int8, weights per output channel, activations per tensor at run time
# (DynamicQuantizeMatMul, onnxruntime's u8s8 GEMM: VNNI or AMX where the CPU has them). Its 1500-frame
# products are large enough for that GEMM; MatMulNBits dequantises per block and was 1.9x slower on
# tiny.en's encoder (1 thread: 221 against 428 ms). The +1.03 points above came with the decoders dynamic
# too; the encoder alone in this form measured within the WER's noise of fp32 (docs/ort.md, int8).


def quantize_int8_file(src: Path, dst: Path, bits: int = 8, block: int = INT8_BLOCK) -> None:
    """MatMulNBits weights of `bits` bits in blocks of `block` (the store's int8 decoders; discover's builds)."""
    import logging

    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

    logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer").setLevel(logging.WARNING)
    config = DefaultWeightOnlyQuantConfig(block_size=block, is_symmetric=True,
                                          accuracy_level=INT8_ACCURACY_LEVEL, bits=bits)
    quantizer = MatMulNBitsQuantizer(onnx.load(str(src)), bits=bits, block_size=block, is_symmetric=True,
                                     accuracy_level=INT8_ACCURACY_LEVEL, algo_config=config)
    quantizer.process()
    quantizer.model.save_model_to_file(str(dst), use_external_data_format=False)


def quantize_dynamic_file(src: Path, dst: Path) -> None:
    """Dynamic int8 in operator form: int8 weights per output channel, activations quantised per tensor at
    run time (DynamicQuantizeLinear + MatMulInteger, which onnxruntime fuses into DynamicQuantizeMatMul).
    The default tensor type lets it pass the MultiHeadAttention nodes, whose outputs ONNX's shape
    inference cannot type."""
    import logging

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # its advice (to the root logger) to pre-process is for convolutional models
    try:
        quantize_dynamic(str(src), str(dst), per_channel=True, weight_type=QuantType.QInt8,
                         op_types_to_quantize=["MatMul"],
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    finally:
        root.setLevel(level)


def symmetric_int8(w, axis: int):
    """Symmetric int8 of a float32 matrix, one float32 scale per slice across `axis` (kept as a size-1
    axis): (int8 values, scales)."""
    scale = (np.maximum(np.abs(w).max(axis=axis, keepdims=True), 1e-12) / 127.0).astype(np.float32)
    return np.clip(np.round(w / scale), -127, 127).astype(np.int8), scale


def int8_embedding_file(src: Path, dst: Path, config: dict) -> None:
    """The token embedding as int8 rows with one scale per row: the lookup gathers int8 rows and their
    scales, then casts and multiplies (standard operators). The logits' projection keeps its own weights
    (transposed at export, quantised by the step before), so only the lookup reads this table, and its
    fp32 copy (vocabulary x d_model x 4 bytes: 106 MB on base) leaves memory. A graph without the
    embedding (the cross-attention K/V) is copied; src may be dst."""
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
        q, scale = symmetric_int8(numpy_helper.to_array(table).astype(np.float32), axis=1)
        name, out = node.input[0], node.output[0]
        graph.initializer.extend([numpy_helper.from_array(q, f"{name}_int8_rows"),
                                  numpy_helper.from_array(scale, f"{name}_row_scale")])  # (vocab, 1)
        node.input[0], node.output[0] = f"{name}_int8_rows", f"{out}_int8"
        nodes += [helper.make_node("Gather", [f"{name}_row_scale", node.input[1]], [f"{out}_scale"]),
                  helper.make_node("Cast", [f"{out}_int8"], [f"{out}_cast"], to=onnx.TensorProto.FLOAT),
                  helper.make_node("Mul", [f"{out}_cast", f"{out}_scale"], [out])]
        replaced.append(name)
    if not replaced:
        if src != dst:
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


def quantize_int8(fp32_dir: Path, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    config = json.loads((fp32_dir / "config.json").read_text())
    for name in ONNX_FILES:
        src, dst = fp32_dir / name, out_dir / name
        if name == ENCODER:
            quantize_dynamic_file(src, dst)
        else:
            quantize_int8_file(src, dst)
            int8_embedding_file(dst, dst, config)
    _keep_only(out_dir, fp32_dir)


def fuse_attention(onnx_dir: Path) -> None:
    """Every attention `ort` runs as one MultiHeadAttention (onnx_attention.py), in place: the encoder's, and
    decoder_with_past's self- and cross-attention (after batch_inputs: its padding bias goes in the node)."""
    from .onnx_attention import fuse_decoder_attention, fuse_self_attention

    config = json.loads((onnx_dir / "config.json").read_text())
    encoder, decoder = onnx_dir / ENCODER, onnx_dir / DECODER_WITH_PAST
    fuse_self_attention(encoder, encoder, config["encoder_attention_heads"], config["encoder_layers"])
    fuse_decoder_attention(decoder, decoder, config["decoder_attention_heads"], config["decoder_layers"],
                           SELF_ATTENTION_BIAS)


def build_cross_kv(hf_dir: Path, onnx_dir: Path, int8: bool = False) -> None:
    """cross_kv_model.onnx: encoder_hidden_states -> present.<i>.encoder.{key,value}, the cross-attention
    projections of every decoder layer, built from the same weights as the decoders. With it the `ort`
    engine runs every step, the first included, through decoder_with_past (empty self-attention cache)
    and never loads the first-step decoder, whose weights would otherwise sit in memory a second time.
    Cutting this part out of the exported decoder does not work: the export takes the batch size for
    these reshapes from the decoder's hidden states, which drags the whole decoder along."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from safetensors.numpy import load_file

    config = json.loads((onnx_dir / "config.json").read_text())
    heads, d_model = config["decoder_attention_heads"], config["d_model"]
    weights = load_file(str(hf_dir / "model.safetensors"))
    nodes, inits, outputs = [], [numpy_helper.from_array(np.array([0, -1, heads, d_model // heads], np.int64),
                                                        "heads_shape")], []
    for i in range(config["decoder_layers"]):
        prefix = f"model.decoder.layers.{i}.encoder_attn"
        for kv, proj in (("key", "k_proj"), ("value", "v_proj")):
            w = f"{prefix}.{proj}.weight"
            inits.append(numpy_helper.from_array(np.ascontiguousarray(weights[w].T), w))
            x = f"{i}.{kv}.proj"
            nodes.append(helper.make_node("MatMul", ["encoder_hidden_states", w], [x]))
            if f"{prefix}.{proj}.bias" in weights:  # Whisper's k_proj has no bias
                b = f"{prefix}.{proj}.bias"
                inits.append(numpy_helper.from_array(weights[b], b))
                nodes.append(helper.make_node("Add", [x, b], [x + ".bias"]))
                x += ".bias"
            nodes.append(helper.make_node("Reshape", [x, "heads_shape"], [x + ".heads"]))
            out = f"present.{i}.encoder.{kv}"
            nodes.append(helper.make_node("Transpose", [x + ".heads"], [out], perm=[0, 2, 1, 3]))
            outputs.append(helper.make_tensor_value_info(out, TensorProto.FLOAT,
                                                         ["batch_size", heads, "encoder_sequence_length",
                                                          d_model // heads]))
    graph = helper.make_graph(nodes, "whisper_cross_kv", [helper.make_tensor_value_info(
        "encoder_hidden_states", TensorProto.FLOAT, ["batch_size", "encoder_sequence_length", d_model])],
        outputs, inits)
    # The IR version of the exported decoders: a newer onnx writes one onnxruntime may not read yet.
    ir_version = onnx.load(str(onnx_dir / "decoder_with_past_model.onnx"), load_external_data=False).ir_version
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="whisper-bench",
                              ir_version=ir_version)
    onnx.checker.check_model(model)
    target = onnx_dir / CROSS_KV
    if not int8:
        onnx.save(model, str(target))
        return
    fp32 = onnx_dir / f".fp32-{CROSS_KV}"
    onnx.save(model, str(fp32))
    quantize_int8_file(fp32, target)  # exactly as the decoders' cross-attention projections
    fp32.unlink()


def last_position_logits(onnx_dir: Path) -> None:
    """decoder_with_past computes logits for the last position only. The first step of a window feeds
    the whole prompt (up to 224 tokens of previous text) and needs one row of logits; computing all of
    them through the vocabulary projection was ~8 GFLOP per window for base. The rows kept are
    unchanged, so the decoded tokens are too (tested)."""
    import onnx
    from onnx import helper, numpy_helper

    path = onnx_dir / "decoder_with_past_model.onnx"
    model = onnx.load(str(path))
    graph = model.graph
    index, node = next((i, n) for i, n in enumerate(graph.node) if "logits" in n.output)
    hidden = node.input[0]
    if hidden.endswith("/last_position"):
        return
    names = [f"last_position.{k}" for k in ("starts", "ends", "axes")]
    for name, value in zip(names, ([-1], [np.iinfo(np.int64).max], [1])):
        graph.initializer.append(numpy_helper.from_array(np.array(value, dtype=np.int64), name))
    graph.node.insert(index, helper.make_node("Slice", [hidden, *names], [f"{hidden}/last_position"],
                                              name="/proj_out/last_position"))
    node.input[0] = f"{hidden}/last_position"
    onnx.save(model, str(path))
    onnx.checker.check_model(str(path))


# Inputs added to decoder_with_past so that rows of different lengths decode together (`ort --batch-size`):
# each row's positions, and an additive bias on the self-attention scores that hides the zeros a shorter
# row's cache is padded with on the left. At batch 1 the engine feeds the positions the graph computed
# itself and a zero bias, so the result is unchanged (tested).
def batch_inputs(onnx_dir: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    from engines.ort.model import POSITION_IDS

    path = onnx_dir / "decoder_with_past_model.onnx"
    model = onnx.load(str(path))
    graph = model.graph
    if any(i.name == POSITION_IDS for i in graph.input):
        return
    gather = next(n for n in graph.node if n.op_type == "Gather" and n.input[0].endswith("embed_positions.weight"))
    gather.input[1] = POSITION_IDS
    graph.input.append(helper.make_tensor_value_info(POSITION_IDS, TensorProto.INT64,
                                                     ["batch_size", "decoder_sequence_length"]))
    graph.input.append(helper.make_tensor_value_info(SELF_ATTENTION_BIAS, TensorProto.FLOAT,
                                                     ["batch_size", 1, "decoder_sequence_length",
                                                      "total_sequence_length"]))
    nodes = []
    for node in graph.node:
        if node.op_type == "Softmax" and "/self_attn/" in node.name:
            biased = f"{node.input[0]}/biased"
            nodes.append(helper.make_node("Add", [node.input[0], SELF_ATTENTION_BIAS], [biased],
                                          name=f"{node.name}/self_attention_bias"))
            node.input[0] = biased
        nodes.append(node)
    if sum(n.op_type == "Add" and n.name.endswith("/self_attention_bias") for n in nodes) == 0:
        raise ValueError(f"{path}: no self-attention Softmax found to bias")
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.save(model, str(path))
    onnx.checker.check_model(str(path))


def _keep_only(out_dir: Path, side_source: Path) -> None:
    """Leave the ONNX graphs plus the side files an engine needs, nothing else."""
    for path in out_dir.iterdir():
        if path.name not in ONNX_FILES + SIDE_FILES + (CROSS_KV,):
            path.unlink() if path.is_file() else shutil.rmtree(path)
    for name in SIDE_FILES:
        if not (out_dir / name).exists():
            shutil.copy2(side_source / name, out_dir / name)
