"""ONNX Runtime sessions for Whisper: encoder, cross-attention K/V, and the decoder with KV cache.

Every decoding step, the first included, goes through `decoder_with_past_model`: the first step
feeds the whole prompt with an empty self-attention cache and the cross-attention K/V that
`cross_kv_model` (built from the same weights at prepare time) computes once per window.
The first-step decoder itself is never loaded, so the decoder weights sit in memory once, not twice;
its logits are identical (checked at prepare time and by the parity tests).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ENCODER, CROSS_KV, DECODER_WITH_PAST = "encoder_model.onnx", "cross_kv_model.onnx", "decoder_with_past_model.onnx"
# decoder_with_past's batch inputs (harness/models/onnx_format.py:batch_inputs), and the bias that hides a
# padded position: exp(-1e9) is exactly 0 in float32, so a padded row attends as if unpadded.
POSITION_IDS, SELF_ATTENTION_BIAS = "position_ids", "self_attention_bias"
MASKED = -1e9


OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")
# onnxruntime_session_options_config_keys.h
FORCE_SPINNING_STOP, DISABLE_PREPACKING = "session.force_spinning_stop", "session.disable_prepacking"


@dataclass(frozen=True)
class SessionMemory:
    """How the sessions hold memory; scripts/ort_memory.py measures each choice.

    decoder_arena: cross_kv and the decoder keep their activations in onnxruntime's arena between steps
    (the encoder never does: its activations are large and come once per 30 s window). Off: the arena's
    chunks grow by doubling and stay reserved; the steps' tensors are small enough for malloc.
    mem_pattern: each session plans one block for all its activations from the first run's shapes.
    prepacking: MatMul weights are repacked for MLAS at load; without it they are packed at every call
    (int8 then runs 9x slower).
    mmap_threshold: glibc's M_MMAP_THRESHOLD in bytes (None: glibc's own). Setting it also stops glibc
    raising it after a large block is freed, which otherwise leaves the weights' load-time copies and the
    encoder's activations as holes in the heap; the price is fresh pages (faults) for every large block.
    `--low-memory` sets LOW_MEMORY_MMAP_THRESHOLD; scripts/ort_memory.py measures its effect (docs/ort.md).
    """
    decoder_arena: bool = False
    mem_pattern: bool = True
    prepacking: bool = True
    mmap_threshold: int | None = None


LOW_MEMORY_MMAP_THRESHOLD = 1 << 20  # a 512x512 float32 projection: the decoder's per-step tensors stay below


def pool_options(ort, threads: int):
    """SessionOptions with the engine's thread pool: `threads` intra-op threads, operators one at a time,
    and the pool's workers stopping their spin when a Run returns: otherwise they spin on while the
    decoding loop's Python work (logit filters, next feeds) runs between steps, and while the next session
    runs. tiny.en int8, 2 pinned CPUs, 9 files: 1.07x faster end to end, the decoder 1.18x (docs/ort.md);
    no effect at 1 thread (no workers)."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.add_session_config_entry(FORCE_SPINNING_STOP, "1")
    return opts


def set_mmap_threshold(size: int) -> None:
    import ctypes

    m_mmap_threshold = -3  # malloc.h
    ctypes.CDLL("libc.so.6").mallopt(m_mmap_threshold, size)


class OrtWhisper:
    def __init__(self, onnx_dir: Path, threads: int, optimization_level: str = "all",
                 profile_prefix: Path | None = None, memory: SessionMemory = SessionMemory()):
        import onnxruntime as ort

        self.dir = Path(onnx_dir)
        for name in (ENCODER, CROSS_KV, DECODER_WITH_PAST, "config.json"):
            if not (self.dir / name).is_file():
                raise FileNotFoundError(f"{self.dir / name}: model file is missing")
        self.config = json.loads((self.dir / "config.json").read_text())
        self.generation_config = json.loads((self.dir / "generation_config.json").read_text())
        self.n_mels = self.config["num_mel_bins"]
        self.n_text_ctx = self.config["max_target_positions"]
        self.n_layers = self.config["decoder_layers"]
        self.n_heads = self.config["decoder_attention_heads"]
        self.head_dim = self.config["d_model"] // self.n_heads
        opts = pool_options(ort, threads)
        if optimization_level not in OPTIMIZATION_LEVELS:
            raise ValueError(f"graph optimisation level {optimization_level!r}: use one of "
                             f"{', '.join(OPTIMIZATION_LEVELS)}")
        opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, "ORT_DISABLE_ALL" if
                                                optimization_level == "disable" else
                                                f"ORT_ENABLE_{optimization_level.upper()}")
        providers = ["CPUExecutionProvider"]
        if profile_prefix is not None:
            opts.enable_profiling = True
        if not memory.prepacking:
            opts.add_session_config_entry(DISABLE_PREPACKING, "1")
        opts.enable_mem_pattern = memory.mem_pattern
        if memory.mmap_threshold is not None:
            set_mmap_threshold(memory.mmap_threshold)
        opts.enable_cpu_mem_arena = False  # see SessionMemory
        self.encoder = self._session(ort, ENCODER, opts, providers, profile_prefix)
        opts.enable_cpu_mem_arena = memory.decoder_arena
        self.cross_kv = self._session(ort, CROSS_KV, opts, providers, profile_prefix)
        self.decoder_past = self._session(ort, DECODER_WITH_PAST, opts, providers, profile_prefix)
        # A store of layout 5 or later: rows of different lengths can decode together (batch_inputs).
        self.batchable = POSITION_IDS in {i.name for i in self.decoder_past.get_inputs()}
        self._self_names = [f"{i}.decoder.{kv}" for i in range(self.n_layers) for kv in ("key", "value")]
        self._cross_names = [f"{i}.encoder.{kv}" for i in range(self.n_layers) for kv in ("key", "value")]
        self._cross_outputs = [f"present.{n}" for n in self._cross_names]
        self._past_outputs = ["logits"] + [f"present.{n}" for n in self._self_names]

    def _session(self, ort, name: str, opts, providers, profile_prefix: Path | None):
        if profile_prefix is not None:
            opts.profile_file_prefix = f"{profile_prefix}-{name.removesuffix('.onnx')}"
        return ort.InferenceSession(str(self.dir / name), opts, providers=providers)

    def end_profiling(self) -> dict[str, Path]:
        """session name -> its profile file (only when built with a profile prefix)."""
        return {name: Path(session.end_profiling()) for name, session in
                (("encoder", self.encoder), ("cross_kv", self.cross_kv), ("decoder", self.decoder_past))}

    def encode(self, mel: np.ndarray) -> np.ndarray:
        """(n_mels, 3000) -> (1, 1500, d_model); (batch, n_mels, 3000) -> (batch, 1500, d_model)"""
        batch = mel if mel.ndim == 3 else mel[None]
        return self.encoder.run(None, {"input_features": batch.astype(np.float32)})[0]

    def first(self, tokens: np.ndarray, audio_features: np.ndarray):
        cross = self.cross_kv.run(self._cross_outputs, {"encoder_hidden_states": audio_features})
        empty = np.zeros((tokens.shape[0], self.n_heads, 0, self.head_dim), dtype=np.float32)
        rows = tokens.shape[0]
        return self.next(tokens, {"self": [empty] * len(self._self_names), "cross": cross,
                                  "next_position": np.zeros(rows, dtype=np.int64), "pad": np.zeros(rows, np.int64)})

    def next(self, tokens: np.ndarray, cache: dict):
        feeds = {"input_ids": tokens}
        for name, value in zip(self._self_names, cache["self"]):
            feeds[f"past_key_values.{name}"] = value
        for name, value in zip(self._cross_names, cache["cross"]):
            feeds[f"past_key_values.{name}"] = value
        rows, steps = tokens.shape
        if self.batchable:
            total = cache["self"][0].shape[2] + steps
            feeds[POSITION_IDS] = cache["next_position"][:, None] + np.arange(steps, dtype=np.int64)
            bias = np.zeros((rows, 1, steps, total), dtype=np.float32)
            for row, pad in enumerate(cache["pad"]):
                bias[row, :, :, :pad] = MASKED  # the zeros a shorter row's cache was padded with
            feeds[SELF_ATTENTION_BIAS] = bias
        outs = self.decoder_past.run(self._past_outputs, feeds)
        return outs[0][:, -1, :], {**cache, "self": outs[1:], "next_position": cache["next_position"] + steps}

    @staticmethod
    def reorder(cache: dict, rows: np.ndarray) -> dict:
        """Beam search: pick self-attention rows; the cross-attention K/V is the same audio in every
        row, so it is only tiled when the number of rows changes."""
        cross = cache["cross"]
        if cross[0].shape[0] != len(rows):
            cross = [np.ascontiguousarray(np.repeat(v[:1], len(rows), axis=0)) for v in cross]
        return {**cache, "self": [np.ascontiguousarray(v[rows]) for v in cache["self"]], "cross": cross,
                "next_position": cache["next_position"][rows], "pad": cache["pad"][rows]}

    @staticmethod
    def select(cache: dict, rows: np.ndarray) -> dict:
        """Batched decoding: keep these rows (the others' files finished their window)."""
        return {"self": [np.ascontiguousarray(v[rows]) for v in cache["self"]],
                "cross": [np.ascontiguousarray(v[rows]) for v in cache["cross"]],
                "next_position": cache["next_position"][rows], "pad": cache["pad"][rows]}

    @staticmethod
    def stack(caches: list[dict]) -> dict:
        """Batched decoding: rows decoded apart (their prompts differ in length) as one batch, each
        self-attention cache padded on the left to the longest; `pad` says how much, for the bias."""
        longest = max(c["self"][0].shape[2] for c in caches)

        def left_pad(v: np.ndarray) -> np.ndarray:
            width = longest - v.shape[2]
            return np.pad(v, ((0, 0), (0, 0), (width, 0), (0, 0))) if width else v

        n_self, n_cross = len(caches[0]["self"]), len(caches[0]["cross"])
        return {"self": [np.concatenate([left_pad(c["self"][i]) for c in caches]) for i in range(n_self)],
                "cross": [np.concatenate([c["cross"][i] for c in caches]) for i in range(n_cross)],
                "next_position": np.concatenate([c["next_position"] for c in caches]),
                "pad": np.array([longest - c["self"][0].shape[2] for c in caches], dtype=np.int64)}
