"""ONNX Runtime sessions for Whisper: encoder, cross-attention K/V, and the decoder with KV cache.

Every decoding step, the first included, goes through `decoder_with_past_model`: the first step
feeds the whole prompt with an empty self-attention cache and the cross-attention K/V that
`cross_kv_model` (built from the same weights at prepare time) computes once per window.
The first-step decoder itself is never loaded, so the decoder weights sit in memory once, not twice;
its logits are identical (checked at prepare time and by the parity tests).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

ENCODER, CROSS_KV, DECODER_WITH_PAST = "encoder_model.onnx", "cross_kv_model.onnx", "decoder_with_past_model.onnx"


OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")


class OrtWhisper:
    def __init__(self, onnx_dir: Path, threads: int, optimization_level: str = "all"):
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
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        if optimization_level not in OPTIMIZATION_LEVELS:
            raise ValueError(f"graph optimisation level {optimization_level!r}: use one of "
                             f"{', '.join(OPTIMIZATION_LEVELS)}")
        opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, "ORT_DISABLE_ALL" if
                                                optimization_level == "disable" else
                                                f"ORT_ENABLE_{optimization_level.upper()}")
        providers = ["CPUExecutionProvider"]
        # The encoder's activations are large (attention over 1500 frames) and come once per 30 s window:
        # without the arena they go back to the system instead of staying reserved for the whole run.
        opts.enable_cpu_mem_arena = False
        self.encoder = ort.InferenceSession(str(self.dir / ENCODER), opts, providers=providers)
        opts.enable_cpu_mem_arena = True
        self.cross_kv = ort.InferenceSession(str(self.dir / CROSS_KV), opts, providers=providers)
        self.decoder_past = ort.InferenceSession(str(self.dir / DECODER_WITH_PAST), opts, providers=providers)
        self._self_names = [f"{i}.decoder.{kv}" for i in range(self.n_layers) for kv in ("key", "value")]
        self._cross_names = [f"{i}.encoder.{kv}" for i in range(self.n_layers) for kv in ("key", "value")]
        self._cross_outputs = [f"present.{n}" for n in self._cross_names]
        self._past_outputs = ["logits"] + [f"present.{n}" for n in self._self_names]

    def encode(self, mel: np.ndarray) -> np.ndarray:
        """(n_mels, 3000) -> (1, 1500, d_model)"""
        return self.encoder.run(None, {"input_features": mel[None].astype(np.float32)})[0]

    def first(self, tokens: np.ndarray, audio_features: np.ndarray):
        cross = self.cross_kv.run(self._cross_outputs, {"encoder_hidden_states": audio_features})
        empty = np.zeros((tokens.shape[0], self.n_heads, 0, self.head_dim), dtype=np.float32)
        return self.next(tokens, {"self": [empty] * len(self._self_names), "cross": cross})

    def next(self, tokens: np.ndarray, cache: dict):
        feeds = {"input_ids": tokens}
        for name, value in zip(self._self_names, cache["self"]):
            feeds[f"past_key_values.{name}"] = value
        for name, value in zip(self._cross_names, cache["cross"]):
            feeds[f"past_key_values.{name}"] = value
        outs = self.decoder_past.run(self._past_outputs, feeds)
        return outs[0][:, -1, :], {"self": outs[1:], "cross": cache["cross"]}

    @staticmethod
    def reorder(cache: dict, rows: np.ndarray) -> dict:
        """Beam search: pick self-attention rows; the cross-attention K/V is the same audio in every
        row, so it is only tiled when the number of rows changes."""
        cross = cache["cross"]
        if cross[0].shape[0] != len(rows):
            cross = [np.ascontiguousarray(np.repeat(v[:1], len(rows), axis=0)) for v in cross]
        return {"self": [np.ascontiguousarray(v[rows]) for v in cache["self"]], "cross": cross}
