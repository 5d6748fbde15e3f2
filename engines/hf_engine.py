"""`hf`: the transformers automatic-speech-recognition pipeline (PyTorch, CPU).

Its convention differs from openai-whisper's: audio over 30 s is cut into 30 s chunks with 5 s
strides and merged, and each window is padded to 30 s in sample space.
"""
from __future__ import annotations

import numpy as np

from .audio import SAMPLE_RATE
from .base import Engine, FileResult, package_versions

CHUNK_LENGTH_S = 30


class HfEngine(Engine):
    name = "hf"
    convention = "hf-pipeline"

    def load(self) -> None:
        import torch
        from transformers import pipeline
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        if self.precision not in ("fp32", "float32"):
            raise ValueError(f"hf runs fp32 on CPU, not {self.precision!r}")
        torch.set_num_threads(self.threads)
        torch.set_num_interop_threads(1)
        hf_dir = self.model_path("hf")
        if not (hf_dir / "config.json").is_file():
            raise FileNotFoundError(f"{hf_dir / 'config.json'}: model file is missing")
        self.pipe = pipeline("automatic-speech-recognition", model=str(hf_dir), device="cpu",
                             dtype=torch.float32, chunk_length_s=CHUNK_LENGTH_S)
        self.eot = self.pipe.tokenizer.convert_tokens_to_ids("<|endoftext|>")
        s = self.settings
        self.notes.append("long-form by the pipeline's chunked algorithm (30 s chunks, 5 s strides), "
                          "not sequential windows; no previous-text conditioning")
        if s.timestamps:
            self.notes.append("timestamps not predicted (the pipeline's chunk merging decodes without them)")

    def transcribe(self, audio: np.ndarray) -> FileResult:
        s = self.settings
        generate_kwargs = {"num_beams": s.beam_size, "do_sample": False}
        if s.max_new_tokens:
            generate_kwargs["max_new_tokens"] = s.max_new_tokens
        if self.pipe.model.generation_config.is_multilingual:
            generate_kwargs.update(language=s.language, task=s.task)
        out = self.pipe({"raw": audio, "sampling_rate": SAMPLE_RATE}, batch_size=s.batch_size,
                        generate_kwargs=generate_kwargs)
        text = out["text"].strip()
        n_tokens = len(self.pipe.tokenizer(text, add_special_tokens=False).input_ids)
        return FileResult(text=text, n_tokens=n_tokens)

    def versions(self) -> dict[str, str]:
        return package_versions("transformers", "torch", "tokenizers")
