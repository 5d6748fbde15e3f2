"""`ort`: the project's own pipeline on ONNX Runtime, with no Hugging Face code at run time."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np

from ..base import Engine, FileResult, package_versions
from ..registry import BUILD_FILE, BUILDS_DIR, spec
from .decoding import DecodeOptions
from .model import LOW_MEMORY_MMAP_THRESHOLD, OrtWhisper, SessionMemory
from .tokenizer import Tokenizer
from .transcribe import transcribe, transcribe_batch


class OrtEngine(Engine):
    name = "ort"
    memory = SessionMemory()  # scripts/ort_memory.py sets others to measure them

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
        profile = self.profile_dir / "ort_profile" if self.profile_dir is not None else None
        m = replace(self.memory, mmap_threshold=LOW_MEMORY_MMAP_THRESHOLD) if self.low_memory else self.memory
        self.model = OrtWhisper(onnx_dir, self.threads, level, profile, m)
        self.notes.append(f"memory: decoder arena {'on' if m.decoder_arena else 'off'}, glibc mmap threshold "
                          + (f"{m.mmap_threshold // 1024} KiB" if m.mmap_threshold else "glibc's own")
                          + ("" if m.mem_pattern else ", no memory patterns")
                          + ("" if m.prepacking else ", no prepacking"))
        self.tokenizer = Tokenizer(onnx_dir / "tokenizer.json", self.model.generation_config)
        s = self.settings
        self.options = DecodeOptions(task=s.task, language=s.language, beam_size=s.beam_size,
                                     max_new_tokens=s.max_new_tokens, timestamps=s.timestamps)
        if s.batch_size > 1 and not self.batch_capable:
            self.notes.append("batch_size > 1 not used: " + ("beam search decodes one file at a time" if
                              s.beam_size > 1 else "this model's decoder has no batch inputs (store layout < 5 "
                              "or a build without them)"))
        elif s.batch_size > 1:
            self.notes.append(f"batch of {s.batch_size} files: windows encoded and decoded together, each file "
                              f"by the sequential algorithm")

    @property
    def batch_capable(self) -> bool:
        return self.model.batchable and self.settings.beam_size == 1

    def transcribe(self, audio: np.ndarray) -> FileResult:
        out = transcribe(self.model, self.tokenizer, audio, self.options, self.settings.condition_on_previous_text)
        return FileResult(text=out.text, n_tokens=len(out.tokens), stage_s=out.stage_s, tokens=out.tokens)

    def transcribe_batch(self, audios: list[np.ndarray]) -> list[FileResult]:
        if not self.batch_capable:
            return [self.transcribe(a) for a in audios]
        outs = transcribe_batch(self.model, self.tokenizer, audios, self.options,
                                self.settings.condition_on_previous_text)
        return [FileResult(text=o.text, n_tokens=len(o.tokens), stage_s=o.stage_s, tokens=o.tokens) for o in outs]

    def finish(self) -> dict:
        if self.profile_dir is None:
            return {}
        from .profile import PROFILE_CSV, summarize

        rows = summarize(self.model.end_profiling(), self.profile_dir)
        self.notes.append(f"--profile: onnxruntime's profiler was on (timings include its overhead); "
                          f"time per operator in {PROFILE_CSV}")
        return {"profile_top_ops": [{k: r[k] for k in ("session", "op", "total_ms", "share_pct")} for r in rows[:10]]}

    def versions(self) -> dict[str, str]:
        return package_versions("onnxruntime", "numpy")
