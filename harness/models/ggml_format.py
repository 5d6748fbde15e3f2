"""whisper.cpp's model file (ggml), written by the project from the openai-named weights, byte for byte
as whisper.cpp's own tools write it.

Layout (whisper.cpp `models/convert-pt-to-ggml.py`, read by `whisper_model_load`), little-endian int32s:
  magic 0x67676d6c; n_vocab, n_audio_ctx, n_audio_state, n_audio_head, n_audio_layer, n_text_ctx,
  n_text_state, n_text_head, n_text_layer, n_mels, ftype;
  mel filters: n_mels, n_fft_bins, then n_mels x n_fft_bins float32 (openai-whisper's mel_filters.npz
  values, which `mel_filters` reproduces bit for bit);
  vocabulary: count, then per token its byte length and bytes (the base vocabulary, ids below
  end-of-text, gpt2.tiktoken's order; whisper.cpp adds the special tokens itself);
  tensors in openai-whisper's state_dict order: n_dims, name length, type, dims innermost first, name,
  data (rows in C order).
f16 files follow the converter: f32 for 1-D tensors, the conv biases (reshaped to (n, 1)) and both
positional embeddings, f16 for every other tensor (conv weights and the token embedding included).
Quantised files follow whisper.cpp's `quantize` tool run on that f16 file: every 2-D tensor but the
conv biases and positional embeddings is quantised from its f16 values; conv weights stay f16, 1-D
tensors f32. The header's ftype is GGML_QNT_VERSION * 1000 + the file type. Block formats (ggml-quants.c,
`quantize_row_q8_0_ref` / `quantize_row_q5_0_ref`, float32 arithmetic throughout):
  Q8_0: 32 values per block: f16 scale d = max|x| / 127, then 32 int8 roundf(x * (1/d)), roundf
        rounding halves away from zero (numpy's round rounds them to even).
  Q5_0: 32 values per block: f16 scale d = x_absmax_signed / -16, 4 bytes of high bits, 16 bytes of low
        nibbles (value j in the low nibble of byte j, value j + 16 in its high nibble).
"""
from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

from .ct2_to_hf import WhisperDims, openai_state_dict

MAGIC = 0x67676D6C
QK = 32                         # values per quantisation block
GGML_QNT_VERSION_FACTOR = 1000
GGML_QNT_VERSION = 2
# file type (whisper.cpp's ftype) and the ggml tensor type of quantised 2-D weights
FILE_TYPES = {"fp32": (0, 0), "f16": (1, 1), "q5_0": (8, 6), "q8_0": (7, 8)}
TYPE_F32, TYPE_F16 = 0, 1
NEVER_QUANTISED = {"encoder.positional_embedding", "decoder.positional_embedding"}


def _round_half_away(v: np.ndarray) -> np.ndarray:
    """C's roundf, exactly: floor(|v|) plus one when the fraction is at least a half (2 * frac >= 1 is
    exact in float32, unlike |v| + 0.5, which rounds 0.49999997 up)."""
    a = np.abs(v)
    whole = np.floor(a)
    return np.sign(v) * (whole + np.floor(2 * (a - whole)))


def quantize_q8_0(rows: np.ndarray) -> bytes:
    x = rows.reshape(-1, QK).astype(np.float32)
    d = np.abs(x).max(axis=1) / np.float32(127)
    inv = np.divide(np.float32(1), d, out=np.zeros_like(d), where=d != 0)
    q = _round_half_away(x * inv[:, None]).astype(np.int8)
    out = np.empty(len(x), dtype=[("d", "<f2"), ("qs", "i1", QK)])
    out["d"], out["qs"] = d.astype(np.float16), q
    return out.tobytes()


def quantize_q5_0(rows: np.ndarray) -> bytes:
    x = rows.reshape(-1, QK).astype(np.float32)
    idx = np.abs(x).argmax(axis=1)
    d = x[np.arange(len(x)), idx] / np.float32(-16)
    inv = np.divide(np.float32(1), d, out=np.zeros_like(d), where=d != 0)
    # (int8_t)(x*id + 16.5f) truncates toward zero, then MIN(31, ...)
    q = np.minimum(31, np.trunc(x * inv[:, None] + np.float32(16.5)).astype(np.int8)).astype(np.uint8)
    lo, hi = q[:, : QK // 2], q[:, QK // 2:]
    qs = (lo & 0x0F) | ((hi & 0x0F) << 4)
    bits = np.concatenate([(lo >> 4) & 1, (hi >> 4) & 1], axis=1).astype(np.uint32)
    qh = (bits << np.arange(QK, dtype=np.uint32)).sum(axis=1, dtype=np.uint32)
    out = np.empty(len(x), dtype=[("d", "<f2"), ("qh", "<u4"), ("qs", "u1", QK // 2)])
    out["d"], out["qh"], out["qs"] = d.astype(np.float16), qh, qs
    return out.tobytes()


QUANTIZERS = {"q8_0": quantize_q8_0, "q5_0": quantize_q5_0}


def vocabulary_bytes(tokenizer_json: Path) -> list[bytes]:
    """The base vocabulary as raw bytes, ids 0 .. end-of-text - 1 (GPT-2's byte-to-unicode mapping undone)."""
    data = json.loads(tokenizer_json.read_text(encoding="utf-8"))
    eot = next(a["id"] for a in data["added_tokens"] if a["content"] == "<|endoftext|>")
    vocab = {i: t for t, i in data["model"]["vocab"].items() if i < eot}
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    chars, n = printable[:], 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + n)
            n += 1
    decoder = {chr(c): b for b, c in zip(printable, chars)}
    return [bytes(decoder[c] for c in vocab[i]) for i in range(eot)]


# openai-whisper's module order (what its state_dict, and so the converter, walks): the stem, the blocks,
# the final norm; inside a block attention, cross-attention, MLP, each followed by its norm.
_STEM = ("positional_embedding", "conv1", "conv2", "token_embedding")
_BLOCK = ("attn.query", "attn.key", "attn.value", "attn.out", "attn_ln", "cross_attn.query", "cross_attn.key",
          "cross_attn.value", "cross_attn.out", "cross_attn_ln", "mlp.0", "mlp.2", "mlp_ln")
_LEAF = ("weight", "bias")


def openai_order(name: str) -> tuple:
    """Sort key putting openai-named tensors in openai-whisper's state_dict order."""
    side, rest = name.split(".", 1)
    side_rank = ("encoder", "decoder").index(side)
    if rest.startswith("blocks."):
        _, index, inner = rest.split(".", 2)
        module, leaf = inner.rsplit(".", 1)
        return side_rank, 1, int(index), _BLOCK.index(module), _LEAF.index(leaf)
    module, _, leaf = rest.partition(".")
    if module in _STEM:
        return side_rank, 0, _STEM.index(module), 0, _LEAF.index(leaf) if leaf else 0
    return side_rank, 2, 0, 0, _LEAF.index(leaf)  # ln_post / ln


def _tensor_type(name: str, array: np.ndarray, file_type: str) -> int:
    if file_type == "fp32" or array.ndim < 2 or name in NEVER_QUANTISED or name.endswith(".bias"):
        return TYPE_F32
    if file_type == "f16" or array.ndim != 2 or array.shape[-1] % QK:
        return TYPE_F16  # conv weights (3-D) stay f16, as whisper.cpp expects
    return FILE_TYPES[file_type][1]


def write_ggml(path: Path, hf_state: dict[str, np.ndarray], dims: WhisperDims, tokenizer_json: Path,
               mel_filters: np.ndarray, file_type: str) -> None:
    if file_type not in FILE_TYPES:
        raise ValueError(f"ggml file type {file_type!r}: choose one of {', '.join(FILE_TYPES)}")
    ftype, _ = FILE_TYPES[file_type]
    header_ftype = ftype + (GGML_QNT_VERSION * GGML_QNT_VERSION_FACTOR if file_type in QUANTIZERS else 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(struct.pack("<12i", MAGIC, dims.n_vocab, dims.n_audio_ctx, dims.n_audio_state, dims.n_audio_head,
                            dims.n_audio_layer, dims.n_text_ctx, dims.n_text_state, dims.n_text_head,
                            dims.n_text_layer, dims.n_mels, header_ftype))
        f.write(struct.pack("<2i", *mel_filters.shape))
        f.write(mel_filters.astype("<f4").tobytes())
        tokens = vocabulary_bytes(tokenizer_json)
        f.write(struct.pack("<i", len(tokens)))
        for token in tokens:
            f.write(struct.pack("<i", len(token)) + token)
        tensors = openai_state_dict(hf_state)
        for name in sorted(tensors, key=openai_order):
            data = np.asarray(tensors[name], dtype=np.float32)
            if name in ("encoder.conv1.bias", "encoder.conv2.bias"):
                data = data.reshape(data.shape[0], 1)
            ttype = _tensor_type(name, data, file_type)
            encoded = name.encode()
            f.write(struct.pack("<3i", data.ndim, len(encoded), ttype))
            f.write(struct.pack(f"<{data.ndim}i", *reversed(data.shape)))
            f.write(encoded)
            if ttype == TYPE_F32:
                f.write(data.astype("<f4").tobytes())
            elif ttype == TYPE_F16:
                f.write(data.astype("<f2").tobytes())
            else:  # quantize reads the converter's f16 file: it quantises the f16 values
                f.write(QUANTIZERS[file_type](data.astype(np.float16).astype(np.float32)))
