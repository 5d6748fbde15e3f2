"""`openvino`: openvino-genai's WhisperPipeline on the store's OpenVINO IR (fp32, int8 weights).

`fp32` and `int8` (8-bit weights) pin the inference precision to f32: on a CPU with BF16 (AMX,
AVX512-BF16) OpenVINO would otherwise compute in bf16, so the same variant would mean different arithmetic
on different hosts; `bf16` and `int8-bf16` ask for bf16 on purpose, as their own variants. The pipeline's own
long-form algorithm decodes 30 s windows one after another with timestamps, but never with the previous
window's text as prompt: its prompt per window (context_tokens.cpp, `get_prompt_tokens`) is
<|startofprev|> + `initial_prompt` (the first window only) + `hotwords` (one fixed text, every window),
and the generation config has no field that carries decoded text forward. Feeding the previous text back
through `initial_prompt` would mean driving the windows outside the pipeline (and still lose the
timestamp tokens openai-whisper keeps in its prompt), so the difference stays and goes into the notes.
"""
from __future__ import annotations

import numpy as np

from .base import MAX_NEW_TOKENS_DEFAULT, Engine, FileResult, package_versions
from .registry import spec

REQUIRED = ("openvino_encoder_model.xml", "openvino_tokenizer.xml", "openvino_detokenizer.xml")
# Variants computing in bf16 on purpose; every other variant pins f32 activations, whatever the CPU. On a
# CPU with AVX512-BF16 or AMX, OpenVINO's own default is bf16: `int8-bf16` is what its users get there.
BF16_HINT_VARIANTS = {"bf16": "bf16", "int8-bf16": "bf16"}
NO_CONDITIONING_NOTE = (
    "no previous-text conditioning: openvino-genai's WhisperPipeline decodes every 30 s window after the first "
    "without the previous window's text as prompt (its only prompts are initial_prompt, first window only, and "
    "hotwords, one fixed text for all windows); long-form windows 2+ can differ from the other engines")


class OpenvinoEngine(Engine):
    name = "openvino"

    def load(self) -> None:
        import openvino_genai

        ov_dir = self.model_path(spec(self.name).check_variant(self.precision))
        for name in REQUIRED:
            if not (ov_dir / name).is_file():
                raise FileNotFoundError(f"{ov_dir / name}: model file is missing")
        hint = BF16_HINT_VARIANTS.get(self.precision, "f32")
        self.pipe = openvino_genai.WhisperPipeline(str(ov_dir), "CPU", INFERENCE_PRECISION_HINT=hint,
                                                   INFERENCE_NUM_THREADS=self.threads, NUM_STREAMS=1)
        s = self.settings
        self.config = self.pipe.get_generation_config()
        self.config.return_timestamps = s.timestamps
        self.config.num_beams = s.beam_size
        self.config.max_new_tokens = s.max_new_tokens or MAX_NEW_TOKENS_DEFAULT
        if self.config.is_multilingual:
            self.config.language = f"<|{s.language or 'en'}|>"
            self.config.task = s.task
        if s.condition_on_previous_text:
            self.notes.append(NO_CONDITIONING_NOTE)
        self.notes.append(f"inference precision pinned to {hint} (INFERENCE_PRECISION_HINT)")
        if hint == "bf16" and not _cpu_has_bf16():
            self.notes.append("this CPU has no AVX512-BF16 or AMX: OpenVINO emulates bf16 or falls back")
        if s.batch_size > 1:
            self.notes.append("batch_size > 1 not used: files are decoded one at a time")

    def _applied_overrides(self) -> dict:
        return {"max_new_tokens": self.config.max_new_tokens, "condition_on_previous_text": False}

    def transcribe(self, audio: np.ndarray) -> FileResult:
        result = self.pipe.generate(np.ascontiguousarray(audio, dtype=np.float32).tolist(), self.config)
        text = str(result.texts[0] if hasattr(result, "texts") else result).strip()
        return FileResult(text=text, n_tokens=len(text.split()))

    def versions(self) -> dict[str, str]:
        import openvino

        return {**package_versions("openvino", "openvino-genai", "openvino-tokenizers"),
                "cpu": str(openvino.Core().get_property("CPU", "FULL_DEVICE_NAME"))}


def _cpu_has_bf16() -> bool:
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags
