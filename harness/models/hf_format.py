"""Write the Hugging Face format of a Whisper model from CTranslate2 files.

Heavy imports (torch, transformers) stay inside functions: this module is imported only by
`models prepare`, which runs with the `prepare` dependency group.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .ct2_reader import ModelFileError
from .ct2_to_hf import WhisperDims

# Whisper's timestamp tokens: <|0.00|> .. <|30.00|> in 0.02 s steps.
N_TIMESTAMPS = 1501
# Timestamps may start at most 1 s into a window (openai-whisper's max_initial_timestamp).
MAX_INITIAL_TIMESTAMP_INDEX = 50


def full_tokenizer_json(ct2_dir: Path, n_vocab: int) -> dict:
    """The shipped tokenizer.json plus the timestamp tokens, so its length equals the vocab size."""
    path = ct2_dir / "tokenizer.json"
    if not path.is_file():
        raise ModelFileError(f"{path}: tokenizer.json is missing")
    tok = json.loads(path.read_text(encoding="utf-8"))
    added = tok["added_tokens"]
    present = {a["content"] for a in added}
    next_id = max(a["id"] for a in added) + 1
    for i in range(N_TIMESTAMPS):
        content = f"<|{i * 0.02:.2f}|>"
        if content in present:
            continue
        added.append({"id": next_id, "content": content, "single_word": False, "lstrip": False,
                      "rstrip": False, "normalized": False, "special": False})
        next_id += 1
    if next_id != n_vocab:
        raise ModelFileError(f"{path}: tokenizer has {next_id} tokens with timestamps, the model's vocabulary "
                             f"has {n_vocab}: tokenizer and model.bin do not belong together")
    return tok


def special_ids(tok: dict) -> dict[str, int]:
    ids = {a["content"]: a["id"] for a in tok["added_tokens"]}
    names = {"eot": "<|endoftext|>", "sot": "<|startoftranscript|>", "translate": "<|translate|>",
             "transcribe": "<|transcribe|>", "sot_lm": "<|startoflm|>", "sot_prev": "<|startofprev|>",
             "no_timestamps": "<|notimestamps|>", "timestamp_begin": "<|0.00|>"}
    out = {key: ids[tok_name] for key, tok_name in names.items()}
    out["no_speech"] = ids.get("<|nospeech|>", ids.get("<|nocaptions|>"))
    return out


def generation_config(ct2_config: dict, tok: dict, dims: WhisperDims) -> dict:
    ids = {a["content"]: a["id"] for a in tok["added_tokens"]}
    sp = special_ids(tok)
    lang_to_id = {c: i for c, i in ids.items() if i in set(ct2_config.get("lang_ids", []))}
    cfg = {
        "alignment_heads": ct2_config.get("alignment_heads", []),
        "begin_suppress_tokens": ct2_config.get("suppress_ids_begin", [220, sp["eot"]]),
        "bos_token_id": sp["eot"],
        "decoder_start_token_id": sp["sot"],
        "eos_token_id": sp["eot"],
        "pad_token_id": sp["eot"],
        "is_multilingual": dims.is_multilingual,
        "lang_to_id": lang_to_id if dims.is_multilingual else {},
        "task_to_id": {"transcribe": sp["transcribe"], "translate": sp["translate"]},
        "max_initial_timestamp_index": MAX_INITIAL_TIMESTAMP_INDEX,
        "max_length": dims.n_text_ctx,
        "no_timestamps_token_id": sp["no_timestamps"],
        "prev_sot_token_id": sp["sot_prev"],
        "suppress_tokens": ct2_config.get("suppress_ids", []),
    }
    if not dims.is_multilingual:
        cfg["forced_decoder_ids"] = [[1, sp["no_timestamps"]]]
    return cfg


def write_hf(out_dir: Path, state: dict[str, np.ndarray], dims: WhisperDims, ct2_dir: Path) -> None:
    import torch
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
        WhisperTokenizerFast,
    )

    ct2_config = json.loads((ct2_dir / "config.json").read_text(encoding="utf-8"))
    tok = full_tokenizer_json(ct2_dir, dims.n_vocab)
    sp = special_ids(tok)
    config = WhisperConfig(
        vocab_size=dims.n_vocab, num_mel_bins=dims.n_mels, d_model=dims.n_audio_state,
        encoder_layers=dims.n_audio_layer, encoder_attention_heads=dims.n_audio_head,
        decoder_layers=dims.n_text_layer, decoder_attention_heads=dims.n_text_head,
        encoder_ffn_dim=state["model.encoder.layers.0.fc1.weight"].shape[0],
        decoder_ffn_dim=state["model.decoder.layers.0.fc1.weight"].shape[0],
        max_source_positions=dims.n_audio_ctx, max_target_positions=dims.n_text_ctx,
        pad_token_id=sp["eot"], bos_token_id=sp["eot"], eos_token_id=sp["eot"],
        decoder_start_token_id=sp["sot"], begin_suppress_tokens=None, suppress_tokens=None,
        tie_word_embeddings=True, dtype="float32",
    )
    with torch.device("meta"):
        model = WhisperForConditionalGeneration(config)
    tensors = {k: torch.from_numpy(np.array(v)) for k, v in state.items()}
    tensors["proj_out.weight"] = tensors["model.decoder.embed_tokens.weight"]
    missing, unexpected = model.load_state_dict(tensors, strict=False, assign=True)
    if missing or unexpected:
        raise ModelFileError(f"{ct2_dir}/model.bin: conversion left tensors unmapped: "
                             f"missing {missing[:5]}, unexpected {unexpected[:5]}")
    model.tie_weights()
    model.generation_config = GenerationConfig(**generation_config(ct2_config, tok, dims))
    model.save_pretrained(out_dir, safe_serialization=True)

    out_dir.mkdir(parents=True, exist_ok=True)
    tok_file = out_dir / "tokenizer.json"
    tok_file.write_text(json.dumps(tok, ensure_ascii=False), encoding="utf-8")
    tokenizer = WhisperTokenizerFast(tokenizer_file=str(tok_file), bos_token="<|endoftext|>",
                                     eos_token="<|endoftext|>", unk_token="<|endoftext|>",
                                     pad_token="<|endoftext|>", model_max_length=dims.n_text_ctx)
    if len(tokenizer) != dims.n_vocab:
        raise ModelFileError(f"{tok_file}: tokenizer length {len(tokenizer)} != vocab {dims.n_vocab}")
    feature_extractor = WhisperFeatureExtractor(feature_size=dims.n_mels)
    WhisperProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer).save_pretrained(out_dir)
