"""One spec per engine: everything the project knows about an engine, and nothing else anywhere.

The host (plan, images, compose, Makefile extras, the docs' engine table, report) and the runner derive their
tables from `SPECS`; the engine classes are imported lazily (`target`), so importing this module costs
nothing and each container needs only its own engine's packages.

Adding an engine: its module, one `EngineSpec` below, its dependency group in pyproject.toml; then
`python -m harness.generated --write` regenerates compose.yaml and docs/engines.md's engine table.
"""
from __future__ import annotations

import importlib
import re
from dataclasses import dataclass

# Decoding conventions: "openai" = sequential 30 s windows that follow each other at the last timestamp,
# previous text as prompt, the last window zero-padded in log-mel space (openai-whisper, faster-whisper);
# "hf-pipeline" = the same algorithm in transformers, short clips padded in sample space.
CONVENTIONS = ("openai", "hf-pipeline")
# Model builds beside the store's formats (`python -m harness discover`): models/whisper-<name>/variants/
# <build>/, each with a variant.json saying how it was made; an engine with `builds` runs any of them.
BUILDS_DIR = "variants"
BUILD_FILE = "variant.json"
BUILD_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class EngineSpec:
    name: str
    target: str                      # "module:Class", imported only when the engine runs
    variants: dict[str, str]         # variant (precision or build) -> model-store format folder it reads
    group: str                       # pyproject.toml optional-dependency group its image installs
    runtime: str                     # one line for the engine table in docs/engines.md
    # "openai": sequential 30 s windows with timestamps and previous-text prompts (openai-whisper's);
    # "hf-pipeline": transformers' pipeline, which pads short clips in sample space
    convention: str = "openai"
    default_variant: str = "fp32"
    compare_variants: tuple[str, ...] = ()  # what ENGINES=<name> runs; empty: every variant
    builds: bool = False             # also runs any build folder under variants/ by its name
    batching: bool = False           # honours --batch-size N (the BATCH_SIZES throughput scenario)
    # In the default comparison (ENGINES unset). The default is sized to race inside TIME_BUDGET on a 2-vCPU
    # host: the reference implementation (which still runs once, as the accuracy gate's reference), the
    # transformers pipeline (slowest, RTF ~0.21 at 1 core there) and the host-compiled whisper.cpp (a second
    # whisper.cpp) join with ENGINES=all or by name.
    in_default: bool = True

    def __post_init__(self):
        if self.default_variant not in self.variants:
            raise ValueError(f"{self.name}: default variant {self.default_variant!r} is not one of its variants")
        if self.convention not in CONVENTIONS:
            raise ValueError(f"{self.name}: unknown convention {self.convention!r}")

    @property
    def compared(self) -> list[str]:
        return list(self.compare_variants or self.variants)

    def check_variant(self, variant: str) -> str:
        """The variant's store folder (a format, or variants/<build>), or ValueError naming the choices."""
        if variant in self.variants:
            return self.variants[variant]
        if self.builds and BUILD_NAME_RE.fullmatch(variant):
            return f"{BUILDS_DIR}/{variant}"
        more = f", or a build under {BUILDS_DIR}/" if self.builds else ""
        raise ValueError(f"{self.name} supports precision {', '.join(self.variants)}{more}, not {variant!r}")

    def engine_class(self):
        module, cls = self.target.split(":")
        return getattr(importlib.import_module(module), cls)


SPECS: dict[str, EngineSpec] = {s.name: s for s in (
    EngineSpec("ort", "engines.ort.engine:OrtEngine", {"fp32": "onnx", "int8": "onnx-int8"}, "engine-ort",
               "the project's own pipeline on ONNX Runtime: numpy log-mel, KV-cached decoder, greedy and beam "
               "search, timestamp rules, sequential 30 s windows for long audio; no Hugging Face code at run "
               "time; also any build under variants/ (`harness discover`); batches files", builds=True, batching=True),
    EngineSpec("faster-whisper", "engines.faster_whisper_engine:FasterWhisperEngine",
               {"fp32": "ct2", "int8": "ct2"}, "engine-faster-whisper", "CTranslate2 (compute type float32 or int8); "
               "batched: its BatchedInferencePipeline over fixed 30 s chunks", batching=True),
    EngineSpec("openai-whisper", "engines.openai_whisper_engine:OpenaiWhisperEngine", {"fp32": "openai"},
               "engine-openai-whisper", "the reference implementation on PyTorch; the default accuracy baseline",
               in_default=False),
    EngineSpec("hf", "engines.hf_engine:HfEngine", {"fp32": "hf"}, "engine-hf",
               "the transformers automatic-speech-recognition pipeline on PyTorch; batched: the pipeline's "
               "batch size", convention="hf-pipeline", batching=True, in_default=False),
    EngineSpec("whisper-cpp", "engines.whisper_cpp_engine:WhisperCppEngine",
               {"f16": "ggml", "q8_0": "ggml", "q5_0": "ggml"}, "engine-whisper-cpp",
               "whisper.cpp (pywhispercpp's bundled build) on ggml files the project writes byte for byte as "
               "whisper.cpp's converter and quantize tool do; no fp32: the bundled build needs f16 conv kernels",
               default_variant="f16", compare_variants=("f16", "q8_0")),
    EngineSpec("whisper-cpp-native", "engines.whisper_cpp_engine:WhisperCppNativeEngine",
               {"f16": "ggml", "q8_0": "ggml", "q5_0": "ggml"}, "engine-whisper-cpp-native",
               "the same bindings with whisper.cpp compiled in the image for the host's CPU (GGML_NATIVE, as "
               "its users build it); the image is tied to that CPU family", default_variant="f16",
               compare_variants=("f16", "q8_0"), in_default=False),
    EngineSpec("openvino", "engines.openvino_engine:OpenvinoEngine",
               {"fp32": "openvino", "bf16": "openvino", "int8": "openvino-int8", "int8-bf16": "openvino-int8"},
               "engine-openvino",
               "openvino-genai's WhisperPipeline on OpenVINO IR exported with optimum-intel; fp32 pinned to f32 "
               "arithmetic, bf16 its own variant (for CPUs with AVX512-BF16 or AMX), int8 = 8-bit weights with f32 "
               "activations pinned, int8-bf16 = the same files with bf16 activations (OpenVINO's own default on "
               "those CPUs)",
               compare_variants=("fp32", "int8")),
)}
# Installed beside every engine's group (pyproject's [tool.whisper-bench] every-engine): LoadGen for serving.
SERVE_GROUP = "serve"
# The engine whose transcripts every other run is compared with (and whose fp32 run is the baseline row).
BASELINE_ENGINE = "openai-whisper"


def spec(name: str) -> EngineSpec:
    if name not in SPECS:
        raise ValueError(f"unknown engine {name!r}: choose one of {', '.join(SPECS)}")
    return SPECS[name]


def engine_class(name: str):
    return spec(name).engine_class()


def host_extras() -> list[str]:
    """The pyproject extras a development venv installs: model preparation, every engine, the tests."""
    return ["prepare", *dict.fromkeys(s.group for s in SPECS.values()), SERVE_GROUP, "test"]


if __name__ == "__main__":  # the Makefile's extras, read before the venv exists (standard library only)
    import sys

    if sys.argv[1:] != ["--extras"]:
        sys.exit("usage: python -m engines.registry --extras (compose.yaml and docs/engines.md: "
                 "python -m harness.generated --write)")
    print(",".join(host_extras()))
