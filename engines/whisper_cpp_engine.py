"""`whisper-cpp`: whisper.cpp through pywhispercpp's bundled build, on the store's ggml files.

Variants are the ggml file types: f16 (f16 weights; ggml converts activations to f16 for those matrix
products, so it is not fp32 arithmetic), q8_0 and q5_0 (block-quantised weights). An f32 file loads but
the bundled whisper.cpp asserts f16 conv kernels, so there is no fp32 variant. What the bundled
build was compiled for (AVX2, AVX-512, ...) is recorded from whisper.cpp's system info: a wheel built for
a generic x86-64 may lack instruction sets the host has.

The files are byte for byte what whisper.cpp's converter and `quantize` tool write (tests/test_ggml_bytes.py).
Greedy decoding without temperature fallback is sensitive to the last bit: with the project's earlier Q8_0
rounding (ties to even, one quantum off in 0.15 % of blocks) tiny.en at 2 threads lost 52 s of long-02.wav
to three one-word segments, while 1, 3 and 4 threads and ggml's own rounding at 1 to 4 threads did not
(docs/engines.md).
"""
from __future__ import annotations

import numpy as np

from .base import MAX_NEW_TOKENS_DEFAULT, Engine, FileResult, package_versions
from .registry import spec


class WhisperCppEngine(Engine):
    name = "whisper-cpp"

    def load(self) -> None:
        from pywhispercpp.model import Model

        ggml_dir = self.model_path(spec(self.name).check_variant(self.precision))
        path = ggml_dir / f"ggml-model-{self.precision}.bin"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: model file is missing")
        s = self.settings
        self._new_model = lambda: Model(str(path), redirect_whispercpp_logs_to=None, n_threads=self.threads,
                                        print_progress=False, print_realtime=False, print_timestamps=False)
        self.model = self._new_model()
        self._used = False
        self.params = {
            "language": s.language or "en", "translate": s.task == "translate", "no_timestamps": not s.timestamps,
            "no_context": not s.condition_on_previous_text, "temperature": s.temperature, "temperature_inc": 0.0,
            "single_segment": False, "suppress_blank": True, "max_initial_ts": 1.0,
        }
        if s.beam_size > 1:
            self.notes.append("beam search not wired for whisper-cpp: greedy decoding used")
        if s.batch_size > 1:
            self.notes.append("batch_size > 1 not used: files are decoded one at a time")
        info = self.system_info()
        self.notes.append(f"whisper.cpp system info: {info}")
        self.notes.append("a fresh whisper.cpp context per file (built untimed) so no prompt carries over")

    def before_file(self) -> None:
        # whisper.cpp keeps the previous file's text as the next file's prompt (the state's prompt_past
        # survives whisper_full calls, and the bindings expose no state reset; a decode with no_context
        # leaves its own output there). A fresh context per file, built outside the timed region, starts
        # each file with no prompt, as in every other engine.
        if self.settings.condition_on_previous_text and self._used:
            self.model = None  # free the old context first: two at once would inflate the peak memory
            self.model = self._new_model()
        self._used = True

    @staticmethod
    def system_info() -> str:
        import _pywhispercpp as pw

        return str(pw.whisper_print_system_info()).strip()

    def _applied_overrides(self) -> dict:
        # whisper.cpp stops a window at half the text context, like openai-whisper; it pads the last
        # window in sample space before the log-mel (openai-whisper pads the log-mel).
        return {"max_new_tokens": self.settings.max_new_tokens or MAX_NEW_TOKENS_DEFAULT}

    def transcribe(self, audio: np.ndarray) -> FileResult:
        import _pywhispercpp as pw

        segments = self.model.transcribe(np.ascontiguousarray(audio, dtype=np.float32), **self.params)
        text = " ".join(seg.text.strip() for seg in segments).strip()  # segments carry no leading space
        ctx = self.model._ctx  # the bindings expose token ids only through the context
        eot = pw.whisper_token_eot(ctx)
        tokens = [tid for i in range(pw.whisper_full_n_segments(ctx)) for j in range(pw.whisper_full_n_tokens(ctx, i))
                  if (tid := pw.whisper_full_get_token_id(ctx, i, j)) < eot]
        return FileResult(text=text, n_tokens=len(tokens), tokens=tokens)

    def versions(self) -> dict[str, str]:
        return package_versions("pywhispercpp")


class WhisperCppNativeEngine(WhisperCppEngine):
    """The same bindings with whisper.cpp compiled in the image for the build host (GGML_NATIVE), as
    whisper.cpp's users build it; the image then runs only on that CPU family."""

    name = "whisper-cpp-native"

    def load(self) -> None:
        super().load()
        self.notes.append("whisper.cpp compiled from source for the image's build host (-march=native, AMX "
                          "left out: its int8 path crashed on q8_0): tied to that CPU family")
