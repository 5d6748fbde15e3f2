"""`ort`: the project's own pipeline on ONNX Runtime, with no Hugging Face code at run time."""
from __future__ import annotations

import json

import numpy as np

from ..base import Engine, FileResult, package_versions
from ..registry import BUILD_FILE, BUILDS_DIR, spec
from .decoding import DecodeOptions
from .model import OrtWhisper
from .tokenizer import Tokenizer
from .transcribe import transcribe


class OrtEngine(Engine):
    name = "ort"

    def load(self) -> None:
        folder = spec(self.name).check_variant(self.precision)
        onnx_dir = self.model_path(folder)
        level = "all"
        if folder.startswith(BUILDS_DIR + "/"):  # a build: its own folder and the level it was made for
            onnx_dir = self.model_dir / folder
            if not onnx_dir.is_dir():
                raise FileNotFoundError(f"{onnx_dir}: no such build (make it with `python -m harness discover`)")
            build = json.loads((onnx_dir / BUILD_FILE).read_text()) if (onnx_dir / BUILD_FILE).is_file() else {}
            level = (build.get("session") or {}).get("graph_optimization_level", level)
            self.notes.append(f"build {self.precision}: {build.get('how', 'no variant.json')}; "
                              f"graph optimisation level {level}")
        self.model = OrtWhisper(onnx_dir, self.threads, level)
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
