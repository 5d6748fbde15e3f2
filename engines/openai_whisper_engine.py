"""`openai-whisper`: the reference implementation, fp32 on PyTorch; the default WER baseline."""
from __future__ import annotations

import numpy as np

from .base import Engine, FileResult, package_versions, set_interop_threads


class OpenaiWhisperEngine(Engine):
    name = "openai-whisper"

    def load(self) -> None:
        import torch
        import whisper

        torch.set_num_threads(self.threads)
        set_interop_threads(torch, 1)
        checkpoints = sorted(self.model_path("openai").glob("*.pt"))
        if not checkpoints:
            raise FileNotFoundError(f"{self.model_path('openai')}: no openai-whisper checkpoint (*.pt)")
        self.model = whisper.load_model(str(checkpoints[0]), device="cpu")
        from whisper.tokenizer import get_tokenizer

        self.tokenizer = get_tokenizer(self.model.is_multilingual, num_languages=self.model.num_languages)

    def transcribe(self, audio: np.ndarray) -> FileResult:
        s = self.settings
        options = {"beam_size": s.beam_size} if s.beam_size > 1 else {}
        if s.max_new_tokens:
            options["sample_len"] = s.max_new_tokens
        result = self.model.transcribe(
            audio, language=s.language if self.model.is_multilingual else None, task=s.task,
            temperature=s.temperature, fp16=False, condition_on_previous_text=s.condition_on_previous_text,
            without_timestamps=not s.timestamps, no_speech_threshold=s.no_speech_threshold,
            logprob_threshold=None, compression_ratio_threshold=None, verbose=None, **options)
        eot = self.tokenizer.eot
        tokens = [t for seg in result["segments"] for t in seg["tokens"] if t < eot]
        return FileResult(text=result["text"].strip(), n_tokens=len(tokens), tokens=tokens)

    def versions(self) -> dict[str, str]:
        return package_versions("openai-whisper", "torch")
