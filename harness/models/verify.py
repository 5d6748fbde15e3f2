"""`models verify`: file hashes against the manifest, and the same greedy tokens from every format."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from ..errors import UserError
from .store import check_files

CLIP_TEXT = "The quick brown fox jumps over the lazy dog while the engines are compared fairly."


def window_features(audio: np.ndarray, n_mels: int) -> np.ndarray:
    """One (1, n_mels, 3000) window as the sequential algorithm builds it: the clip's log-mel, zero-padded
    in log-mel space (openai-whisper's and faster-whisper's convention)."""
    from engines.ort.features import N_FRAMES, N_SAMPLES, log_mel_spectrogram, pad_or_trim

    mel = log_mel_spectrogram(audio, n_mels, padding=N_SAMPLES)
    return np.ascontiguousarray(pad_or_trim(mel[:, :mel.shape[-1] - N_FRAMES])[None])


def ct2_tokens(model_dir: Path, audio: np.ndarray, prompt: list[int]) -> list[int]:
    import ctranslate2

    model = ctranslate2.models.Whisper(str(model_dir / "ct2"), device="cpu", compute_type="float32")
    mel = window_features(audio, model.n_mels)
    result = model.generate(ctranslate2.StorageView.from_array(mel), [prompt], beam_size=1,
                            suppress_blank=True, max_length=224)
    return result[0].sequences_ids[0]


def hf_tokens(model_dir: Path, audio: np.ndarray, prompt: list[int]) -> list[int]:
    import torch
    from transformers import WhisperForConditionalGeneration

    model = WhisperForConditionalGeneration.from_pretrained(str(model_dir / "hf"))
    mel = window_features(audio, model.config.num_mel_bins)
    with torch.no_grad():
        out = model.generate(torch.from_numpy(mel), decoder_input_ids=torch.tensor([prompt]),
                             max_new_tokens=224, num_beams=1, do_sample=False)
    eot = model.generation_config.eos_token_id
    return [t for t in out[0].tolist() if t < eot]  # generate returns the prompt too in some versions


def ort_tokens(model_dir: Path, audio: np.ndarray, precision: str) -> list[int]:
    from engines.ort.decoding import DecodeOptions
    from engines.ort.model import OrtWhisper
    from engines.ort.tokenizer import Tokenizer
    from engines.ort.transcribe import transcribe
    from engines.registry import spec

    onnx_dir = model_dir / spec("ort").check_variant(precision)
    model = OrtWhisper(onnx_dir, threads=2)
    tok = Tokenizer(onnx_dir / "tokenizer.json", model.generation_config)
    return transcribe(model, tok, audio, DecodeOptions(timestamps=False)).tokens


def openai_tokens(model_dir: Path, audio: np.ndarray) -> list[int]:
    import whisper
    from whisper.tokenizer import get_tokenizer

    model = whisper.load_model(str(next((model_dir / "openai").glob("*.pt"))), device="cpu")
    result = model.transcribe(audio, temperature=0.0, fp16=False, without_timestamps=True,
                              language="en" if model.is_multilingual else None, no_speech_threshold=None,
                              logprob_threshold=None, compression_ratio_threshold=None)
    eot = get_tokenizer(model.is_multilingual, num_languages=model.num_languages).eot
    return [t for seg in result["segments"] for t in seg["tokens"] if t < eot]


def format_tokens(model_dir: Path, audio: np.ndarray) -> dict[str, list[int]]:
    """Greedy, no-timestamp tokens of one short clip (< 30 s) in every format."""
    from engines.ort.tokenizer import Tokenizer

    gen = json.loads((model_dir / "hf" / "generation_config.json").read_text())
    tok = Tokenizer(model_dir / "hf" / "tokenizer.json", gen)
    prompt = tok.sot_sequence("en", "transcribe") + [tok.no_timestamps]
    return {"ct2": ct2_tokens(model_dir, audio, prompt), "hf": hf_tokens(model_dir, audio, prompt),
            "onnx": ort_tokens(model_dir, audio, "fp32"), "onnx-int8": ort_tokens(model_dir, audio, "int8"),
            "openai": openai_tokens(model_dir, audio), "ggml": engine_tokens(model_dir, audio, "whisper-cpp", "f16")}


# Formats whose numbers differ from fp32 by design (quantised weights, f16 arithmetic): agreement reported.
REPORTED_ONLY = ("onnx-int8", "ggml")


def _engine_result(model_dir: Path, audio: np.ndarray, engine: str, variant: str):
    """Greedy, no-timestamp transcription through the project's engine wrapper."""
    from engines.base import DecodingSettings
    from engines.registry import spec

    runner = spec(engine).engine_class()(model_dir, DecodingSettings(timestamps=False), 2, variant)
    runner.load()
    return runner.transcribe(audio)


def engine_tokens(model_dir: Path, audio: np.ndarray, engine: str, variant: str) -> list[int]:
    return _engine_result(model_dir, audio, engine, variant).tokens


def engine_text(model_dir: Path, audio: np.ndarray, engine: str, variant: str) -> str:
    return _engine_result(model_dir, audio, engine, variant).text


def verify(model_dir: Path, audio: str | None = None) -> dict[str, list[int]]:
    from engines.audio import load_audio

    if not model_dir.is_dir():
        raise UserError(f"{model_dir} does not exist: run `python -m harness models prepare` first")
    problems = check_files(model_dir)
    if problems:
        raise UserError(f"{problems[0]} ({len(problems)} problem(s)); re-run `models prepare --force`")
    print(f"{model_dir}: every file matches its manifest")
    if audio is None:
        from ..audio.synth import synthesize
        with tempfile.TemporaryDirectory() as tmp:
            clip = Path(tmp) / "clip.wav"
            synthesize(CLIP_TEXT, clip)
            samples = load_audio(clip)
    else:
        samples = load_audio(audio)
    tokens = format_tokens(model_dir, samples)
    reference = tokens["ct2"]
    mismatched = []
    for fmt, ids in tokens.items():
        same = ids == reference
        agree = sum(a == b for a, b in zip(ids, reference)) / max(len(reference), len(ids), 1)
        print(f"  {fmt:<10} {len(ids):3d} tokens  {'identical to ct2' if same else f'{agree:.0%} agree with ct2'}")
        if not same and fmt not in REPORTED_ONLY:
            mismatched.append(fmt)
    import jiwer

    from ..scoring.normalizer import normalize

    reference_text = normalize(engine_text(model_dir, samples, "ort", "fp32"))
    for variant in ("fp32", "int8"):
        text = normalize(engine_text(model_dir, samples, "openvino", variant))
        print(f"  openvino {variant:<5} WER {jiwer.wer(reference_text, text):.3f} against the fp32 transcript")
    if mismatched:
        raise UserError(f"{model_dir}: greedy tokens of {', '.join(mismatched)} differ from ct2")
    return tokens
