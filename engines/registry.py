"""Engine name -> class, imported lazily so each container needs only its own engine's packages."""
from __future__ import annotations

import importlib

ENGINES = {
    "ort": "engines.ort.engine:OrtEngine",
    "hf": "engines.hf_engine:HfEngine",
    "faster-whisper": "engines.faster_whisper_engine:FasterWhisperEngine",
    "openai-whisper": "engines.openai_whisper_engine:OpenaiWhisperEngine",
}
# The precision each engine runs unless told otherwise.
DEFAULT_PRECISION = {"ort": "fp32", "hf": "fp32", "faster-whisper": "fp32", "openai-whisper": "fp32"}


def engine_class(name: str):
    if name not in ENGINES:
        raise ValueError(f"unknown engine {name!r}: choose one of {', '.join(ENGINES)}")
    module, cls = ENGINES[name].split(":")
    return getattr(importlib.import_module(module), cls)
