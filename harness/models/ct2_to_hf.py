"""Map a CTranslate2 Whisper model onto Hugging Face `WhisperForConditionalGeneration` tensors.

The inverse of CTranslate2's transformers converter:
  - `self_attention/linear_0` holds q;k;v fused along the output axis; its k bias is zeros (HF has none).
  - decoder `attention/linear_0` is the cross-attention query, `attention/linear_1` fused k;v,
    `attention/linear_2` the output projection.
  - `decoder/projection` aliases the token embeddings (tied in HF as `proj_out`).
Weights are returned as float32 numpy arrays; HF and openai-whisper formats are built from them.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass

import numpy as np

from .ct2_reader import Ct2Model, ModelFileError

ENGLISH_ONLY_VOCAB = 51864  # 51865 for the multilingual models (one more language token)
_LAYER = re.compile(r"^(encoder|decoder)/layer_(\d+)/")


@dataclass
class WhisperDims:
    n_mels: int
    n_vocab: int
    n_audio_ctx: int
    n_audio_state: int
    n_audio_head: int
    n_audio_layer: int
    n_text_ctx: int
    n_text_state: int
    n_text_head: int
    n_text_layer: int

    @property
    def is_multilingual(self) -> bool:
        return self.n_vocab >= ENGLISH_ONLY_VOCAB + 1

    def as_dict(self) -> dict:
        return asdict(self)


def _count_layers(model: Ct2Model, stack: str) -> int:
    # `layer_norm` also starts with `layer_`: only `layer_<digits>/` counts.
    ids = {int(m.group(2)) for name in model.variables if (m := _LAYER.match(name)) and m.group(1) == stack}
    return max(ids) + 1 if ids else 0


def whisper_dims(model: Ct2Model) -> WhisperDims:
    if model.spec != "WhisperSpec":
        raise ModelFileError(f"model spec is {model.spec!r}, not a Whisper model")
    conv1 = model.get("encoder/conv1/weight")
    emb = model.get("decoder/embeddings/weight")
    return WhisperDims(
        n_mels=conv1.shape[1],
        n_vocab=emb.shape[0],
        n_audio_ctx=model.get("encoder/position_encodings/encodings").shape[0],
        n_audio_state=conv1.shape[0],
        n_audio_head=int(model.scalar("encoder/num_heads")),
        n_audio_layer=_count_layers(model, "encoder"),
        n_text_ctx=model.get("decoder/position_encodings/encodings").shape[0],
        n_text_state=emb.shape[1],
        n_text_head=int(model.scalar("decoder/num_heads")),
        n_text_layer=_count_layers(model, "decoder"),
    )


def _f32(array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(array, dtype=np.float32)


def _linear(out: dict, model: Ct2Model, src: str, dst: str, bias: bool = True) -> None:
    out[f"{dst}.weight"] = _f32(model.get(f"{src}/weight"))
    if bias:
        out[f"{dst}.bias"] = _f32(model.get(f"{src}/bias"))


def _norm(out: dict, model: Ct2Model, src: str, dst: str) -> None:
    out[f"{dst}.weight"] = _f32(model.get(f"{src}/gamma"))
    out[f"{dst}.bias"] = _f32(model.get(f"{src}/beta"))


def _split_linear(out: dict, model: Ct2Model, src: str, dsts: list[str], biased: list[bool]) -> None:
    weights = np.split(model.get(f"{src}/weight"), len(dsts), axis=0)
    biases = np.split(model.get(f"{src}/bias"), len(dsts), axis=0)
    for dst, w, b, has_bias in zip(dsts, weights, biases, biased):
        out[f"{dst}.weight"] = _f32(w)
        if has_bias:
            out[f"{dst}.bias"] = _f32(b)


def _self_attention(out: dict, model: Ct2Model, src: str, dst: str) -> None:
    _split_linear(out, model, f"{src}/linear_0", [f"{dst}.q_proj", f"{dst}.k_proj", f"{dst}.v_proj"],
                  [True, False, True])
    _linear(out, model, f"{src}/linear_1", f"{dst}.out_proj")


def _ffn(out: dict, model: Ct2Model, src: str, dst: str) -> None:
    _norm(out, model, f"{src}/layer_norm", f"{dst}.final_layer_norm")
    _linear(out, model, f"{src}/linear_0", f"{dst}.fc1")
    _linear(out, model, f"{src}/linear_1", f"{dst}.fc2")


def hf_state_dict(model: Ct2Model) -> tuple[dict[str, np.ndarray], WhisperDims]:
    """Float32 tensors named as in `WhisperForConditionalGeneration.state_dict()`."""
    dims = whisper_dims(model)
    sd: dict[str, np.ndarray] = {}
    enc, dec = "model.encoder", "model.decoder"
    _linear(sd, model, "encoder/conv1", f"{enc}.conv1")
    _linear(sd, model, "encoder/conv2", f"{enc}.conv2")
    sd[f"{enc}.embed_positions.weight"] = _f32(model.get("encoder/position_encodings/encodings"))
    for i in range(dims.n_audio_layer):
        src, dst = f"encoder/layer_{i}", f"{enc}.layers.{i}"
        _norm(sd, model, f"{src}/self_attention/layer_norm", f"{dst}.self_attn_layer_norm")
        _self_attention(sd, model, f"{src}/self_attention", f"{dst}.self_attn")
        _ffn(sd, model, f"{src}/ffn", dst)
    _norm(sd, model, "encoder/layer_norm", f"{enc}.layer_norm")

    sd[f"{dec}.embed_tokens.weight"] = _f32(model.get("decoder/embeddings/weight"))
    sd[f"{dec}.embed_positions.weight"] = _f32(model.get("decoder/position_encodings/encodings"))
    for i in range(dims.n_text_layer):
        src, dst = f"decoder/layer_{i}", f"{dec}.layers.{i}"
        _norm(sd, model, f"{src}/self_attention/layer_norm", f"{dst}.self_attn_layer_norm")
        _self_attention(sd, model, f"{src}/self_attention", f"{dst}.self_attn")
        _norm(sd, model, f"{src}/attention/layer_norm", f"{dst}.encoder_attn_layer_norm")
        _linear(sd, model, f"{src}/attention/linear_0", f"{dst}.encoder_attn.q_proj")
        _split_linear(sd, model, f"{src}/attention/linear_1",
                      [f"{dst}.encoder_attn.k_proj", f"{dst}.encoder_attn.v_proj"], [False, True])
        _linear(sd, model, f"{src}/attention/linear_2", f"{dst}.encoder_attn.out_proj")
        _ffn(sd, model, f"{src}/ffn", dst)
    _norm(sd, model, "decoder/layer_norm", f"{dec}.layer_norm")
    return sd, dims


# openai-whisper names, derived from HF names by ordered substring rules.
_HF_TO_OPENAI = [
    ("model.encoder.embed_positions.weight", "encoder.positional_embedding"),
    ("model.decoder.embed_positions.weight", "decoder.positional_embedding"),
    ("model.decoder.embed_tokens", "decoder.token_embedding"),
    ("model.encoder.layer_norm", "encoder.ln_post"),
    ("model.decoder.layer_norm", "decoder.ln"),
    ("model.", ""),
    (".layers.", ".blocks."),
    (".self_attn_layer_norm", ".attn_ln"),
    (".encoder_attn_layer_norm", ".cross_attn_ln"),
    (".final_layer_norm", ".mlp_ln"),
    (".self_attn.", ".attn."),
    (".encoder_attn.", ".cross_attn."),
    (".q_proj", ".query"),
    (".k_proj", ".key"),
    (".v_proj", ".value"),
    (".out_proj", ".out"),
    (".fc1", ".mlp.0"),
    (".fc2", ".mlp.2"),
]


def openai_state_dict(hf: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = {}
    for name, value in hf.items():
        for old, new in _HF_TO_OPENAI:
            name = name.replace(old, new)
        out[name] = value
    return out
