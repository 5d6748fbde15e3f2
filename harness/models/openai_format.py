"""openai-whisper checkpoint (`whisper.load_model(path)`), from Hugging Face-named tensors."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .ct2_to_hf import WhisperDims, openai_state_dict


def write_openai(path: Path, hf_state: dict[str, np.ndarray], dims: WhisperDims) -> None:
    import torch

    state = {k: torch.from_numpy(np.array(v)) for k, v in openai_state_dict(hf_state).items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    # A plain dict of ints for `dims`: openai-whisper loads with weights_only=True.
    torch.save({"dims": {k: int(v) for k, v in dims.as_dict().items()}, "model_state_dict": state}, path)


def load_hf_safetensors(hf_dir: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    state = {}
    for file in sorted(hf_dir.glob("*.safetensors")):
        state.update(load_file(str(file)))
    state.pop("proj_out.weight", None)  # tied to the token embeddings
    return {k: v.astype(np.float32) for k, v in state.items()}


def dims_from_hf_config(config: dict) -> WhisperDims:
    return WhisperDims(
        n_mels=config["num_mel_bins"], n_vocab=config["vocab_size"],
        n_audio_ctx=config["max_source_positions"], n_audio_state=config["d_model"],
        n_audio_head=config["encoder_attention_heads"], n_audio_layer=config["encoder_layers"],
        n_text_ctx=config["max_target_positions"], n_text_state=config["d_model"],
        n_text_head=config["decoder_attention_heads"], n_text_layer=config["decoder_layers"])
