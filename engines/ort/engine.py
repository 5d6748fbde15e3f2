"""`ort`: the project's own pipeline on ONNX Runtime, with no Hugging Face code at run time."""
from __future__ import annotations

import numpy as np

from ..base import Engine, FileResult, package_versions
from ..registry import spec
from .decoding import DecodeOptions
from .model import OrtWhisper
from .tokenizer import Tokenizer
from .transcribe import transcribe


class OrtEngine(Engine):
    name = "ort"

    def load(self) -> None:
        onnx_dir = self.model_path(spec(self.name).check_variant(self.precision))
        self.model = OrtWhisper(onnx_dir, self.threads)
        self.tokenizer = Tokenizer(onnx_dir / "tokenizer.json", self.model.generation_config)
        s = self.settings
        self.options = DecodeOptions(task=s.task, language=s.language, beam_size=s.beam_size,
                                     max_new_tokens=s.max_new_tokens, timestamps=s.timestamps)
        if s.batch_size > 1:
            self.notes.append("batch_size > 1 not supported: files are decoded one at a time")

    def transcribe(self, audio: np.ndarray) -> FileResult:
        out = transcribe(self.model, self.tokenizer, audio, self.options, self.settings.condition_on_previous_text)
        return FileResult(text=out.text, n_tokens=len(out.tokens), stage_s=out.stage_s, tokens=out.tokens)

    def versions(self) -> dict[str, str]:
        return package_versions("onnxruntime", "numpy")
