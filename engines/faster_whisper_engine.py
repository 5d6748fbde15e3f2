"""`faster-whisper`: CTranslate2, compute types float32 and int8."""
from __future__ import annotations

import numpy as np

from .audio import SAMPLE_RATE
from .base import Engine, FileResult, package_versions

# variant (engines/registry.py) -> CTranslate2 compute type
COMPUTE_TYPES = {"fp32": "float32", "int8": "int8"}
# CTranslate2's Whisper stops a window at the model's text context (448 positions) counted with the prompt;
# a fixed max_new_tokens plus a 223-token previous-text prompt can exceed it, which it refuses.
MAX_LENGTH = 448
CHUNK_S = 30  # batched pipeline: the fixed chunks it decodes in parallel, one Whisper window each


class FasterWhisperEngine(Engine):
    name = "faster-whisper"

    def load(self) -> None:
        from faster_whisper import WhisperModel

        ct2_dir = self.model_path("ct2")
        if not (ct2_dir / "model.bin").is_file():
            raise FileNotFoundError(f"{ct2_dir / 'model.bin'}: model file is missing")
        self.model = WhisperModel(str(ct2_dir), device="cpu", compute_type=COMPUTE_TYPES[self.precision],
                                  cpu_threads=self.threads, num_workers=1, local_files_only=True)
        self.batched = None
        if self.settings.batch_size > 1:
            from faster_whisper import BatchedInferencePipeline

            self.batched = BatchedInferencePipeline(self.model)
            self.notes.append(f"batch_size {self.settings.batch_size}: faster-whisper's BatchedInferencePipeline "
                              f"over fixed 30 s chunks of each file (no VAD): chunks decoded in parallel, without "
                              f"previous-text prompts or timestamp-based seeking, so not the sequential algorithm")

    def _applied_overrides(self) -> dict:
        if self.settings.max_new_tokens:
            return {}
        return {"max_new_tokens": f"{MAX_LENGTH} minus the prompt (CTranslate2's limit)"}

    def transcribe(self, audio: np.ndarray) -> FileResult:
        s = self.settings
        if self.batched is not None:
            return self._transcribe_batched(audio)
        segments, _info = self.model.transcribe(
            audio, language=s.language if self.model.model.is_multilingual else None, task=s.task,
            beam_size=s.beam_size, best_of=1, patience=1.0, temperature=[s.temperature],
            condition_on_previous_text=s.condition_on_previous_text, without_timestamps=not s.timestamps,
            vad_filter=s.vad, no_speech_threshold=s.no_speech_threshold, log_prob_threshold=None,
            compression_ratio_threshold=None, max_new_tokens=s.max_new_tokens)
        return self._result(list(segments))

    def _transcribe_batched(self, audio: np.ndarray) -> FileResult:
        s = self.settings
        duration = audio.shape[0] / SAMPLE_RATE
        chunks = [{"start": t, "end": min(t + CHUNK_S, duration)} for t in np.arange(0, duration, CHUNK_S)]
        segments, _info = self.batched.transcribe(
            audio, language=s.language if self.model.model.is_multilingual else None, task=s.task,
            beam_size=s.beam_size, temperature=[s.temperature], without_timestamps=not s.timestamps,
            vad_filter=False, clip_timestamps=chunks, no_speech_threshold=s.no_speech_threshold,
            log_prob_threshold=None, compression_ratio_threshold=None, max_new_tokens=s.max_new_tokens,
            batch_size=s.batch_size)
        return self._result(list(segments))

    def _result(self, segments) -> FileResult:
        eot = self.model.hf_tokenizer.token_to_id("<|endoftext|>")
        tokens = [t for seg in segments for t in seg.tokens if t < eot]
        return FileResult(text="".join(seg.text for seg in segments).strip(), n_tokens=len(tokens), tokens=tokens)

    def versions(self) -> dict[str, str]:
        return package_versions("faster-whisper", "ctranslate2")
