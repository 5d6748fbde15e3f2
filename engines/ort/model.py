"""ONNX Runtime sessions for Whisper: encoder, decoder (first step), decoder with past (KV cache).

`decoder_model` takes the initial tokens and returns, beside the logits, the self-attention K/V
and the cross-attention K/V; `decoder_with_past_model` returns only the self-attention K/V, so the
cross-attention K/V of the first step is kept for the whole window.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

ENCODER, DECODER, DECODER_WITH_PAST = "encoder_model.onnx", "decoder_model.onnx", "decoder_with_past_model.onnx"
# The decoder weights both decoder graphs use, stored once (written by harness/models/onnx_share.py).
SHARED_DATA, SHARED_INDEX = "decoder_shared.bin", "decoder_shared.json"


def load_shared_initializers(onnx_dir: Path) -> dict[str, np.ndarray]:
    """name -> array, read once from the shared weight file; empty when the folder has none."""
    index_path = onnx_dir / SHARED_INDEX
    if not index_path.is_file():
        return {}
    index = json.loads(index_path.read_text())
    out = {}
    with open(onnx_dir / SHARED_DATA, "rb") as f:
        for name, entry in index.items():
            f.seek(entry["offset"])
            data = np.fromfile(f, dtype=np.dtype(entry["dtype"]), count=int(np.prod(entry["shape"], dtype=np.int64)))
            if data.nbytes != entry["length"]:
                raise ValueError(f"{onnx_dir / SHARED_DATA}: truncated at {name}")
            out[name] = data.reshape(entry["shape"])
    return out


class OrtWhisper:
    def __init__(self, onnx_dir: Path, threads: int):
        import onnxruntime as ort

        self.dir = Path(onnx_dir)
        for name in (ENCODER, DECODER, DECODER_WITH_PAST, "config.json"):
            if not (self.dir / name).is_file():
                raise FileNotFoundError(f"{self.dir / name}: model file is missing")
        self.config = json.loads((self.dir / "config.json").read_text())
        self.generation_config = json.loads((self.dir / "generation_config.json").read_text())
        self.n_mels = self.config["num_mel_bins"]
        self.n_text_ctx = self.config["max_target_positions"]
        self.n_layers = self.config["decoder_layers"]
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        providers = ["CPUExecutionProvider"]
        # The encoder's activations are large and come once per 30 s window: without the arena they go
        # back to the system instead of staying reserved for the rest of the run.
        opts.enable_cpu_mem_arena = False
        self.encoder = ort.InferenceSession(str(self.dir / ENCODER), opts, providers=providers)
        opts.enable_cpu_mem_arena = True
        # Both decoders run on one copy of the decoder weights: ORT uses arrays given by add_initializer
        # instead of reading its own. Pre-packing would copy them again per session, so it is off there.
        self._shared = load_shared_initializers(self.dir)
        if self._shared:
            self._shared_values = {k: ort.OrtValue.ortvalue_from_numpy(v) for k, v in self._shared.items()}
            for name, value in self._shared_values.items():
                opts.add_initializer(name, value)
            opts.add_session_config_entry("session.disable_prepacking", "1")
        self.decoder = ort.InferenceSession(str(self.dir / DECODER), opts, providers=providers)
        self.decoder_past = ort.InferenceSession(str(self.dir / DECODER_WITH_PAST), opts, providers=providers)
        self._self_names = [f"{i}.decoder.{kv}" for i in range(self.n_layers) for kv in ("key", "value")]
        self._cross_names = [f"{i}.encoder.{kv}" for i in range(self.n_layers) for kv in ("key", "value")]
        self._first_outputs = ["logits"] + [f"present.{n}" for n in self._self_names + self._cross_names]
        self._past_outputs = ["logits"] + [f"present.{n}" for n in self._self_names]

    def encode(self, mel: np.ndarray) -> np.ndarray:
        """(n_mels, 3000) -> (1, 1500, d_model)"""
        return self.encoder.run(None, {"input_features": mel[None].astype(np.float32)})[0]

    def first(self, tokens: np.ndarray, audio_features: np.ndarray):
        outs = self.decoder.run(self._first_outputs, {"input_ids": tokens, "encoder_hidden_states": audio_features})
        n = len(self._self_names)
        cache = {"self": outs[1:1 + n], "cross": outs[1 + n:]}
        return outs[0][:, -1, :], cache

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
