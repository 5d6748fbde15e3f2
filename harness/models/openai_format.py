"""openai-whisper checkpoints (`whisper.load_model(path)`), written from and read into Hugging Face-named
tensors."""
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


def hf_names(dims: WhisperDims) -> dict[str, str]:
    """openai-whisper tensor name -> Hugging Face name, by mapping every tensor of an empty HF model
    through the one name table (ct2_to_hf._HF_TO_OPENAI), so the two directions cannot disagree."""
    import torch
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    config = WhisperConfig(vocab_size=dims.n_vocab, num_mel_bins=dims.n_mels, d_model=dims.n_audio_state,
                           encoder_layers=dims.n_audio_layer, encoder_attention_heads=dims.n_audio_head,
                           decoder_layers=dims.n_text_layer, decoder_attention_heads=dims.n_text_head,
                           max_source_positions=dims.n_audio_ctx, max_target_positions=dims.n_text_ctx)
    with torch.device("meta"):
        names = [n for n in WhisperForConditionalGeneration(config).state_dict() if n != "proj_out.weight"]
    return {openai: hf for hf, openai in zip(names, openai_state_dict(dict.fromkeys(names)))}


def read_openai(path: Path) -> tuple[dict[str, np.ndarray], WhisperDims]:
    """An openai-whisper checkpoint (`.pt`) as Hugging Face-named float32 tensors and its dimensions."""
    import torch

    from .ct2_reader import ModelFileError

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        dims = WhisperDims(**{k: int(v) for k, v in checkpoint["dims"].items()})
        state = checkpoint["model_state_dict"]
    except (KeyError, TypeError, RuntimeError, EOFError) as exc:
        raise ModelFileError(f"{path}: not an openai-whisper checkpoint ({str(exc).splitlines()[0][:120]})") from None
    names = hf_names(dims)
    unknown = sorted(set(state) - set(names))
    if unknown or len(state) != len(names):
        raise ModelFileError(f"{path}: tensors do not match the dimensions it declares "
                             f"(unexpected {unknown[:3]}, {len(state)} of {len(names)})")
    return {names[k]: v.float().numpy() for k, v in state.items()}, dims
