"""The store's fused attention (MultiHeadAttention) on the real tiny.en store: the encoders against
openai-whisper's own PyTorch encoder on a committed clip (fp32 the same features, int8 close to them), and
decoder_with_past against the exported first-step decoder, whose attention is as optimum wrote it."""
import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from engines.audio import load_audio
from engines.ort.features import log_mel_spectrogram, pad_or_trim
from engines.ort.model import DECODER_WITH_PAST, ENCODER, SELF_ATTENTION_BIAS, OrtWhisper

DATA = Path(__file__).with_name("data")


@pytest.fixture(scope="module")
def reference(tiny_model):
    """(the clip's padded log-mel window, openai-whisper's encoder output for it)."""
    torch = pytest.importorskip("torch")
    whisper = pytest.importorskip("whisper")
    mel = pad_or_trim(log_mel_spectrogram(load_audio(DATA / "fox.flac")))
    model = whisper.load_model(str(tiny_model / "openai" / "tiny.en.pt"), device="cpu")
    with torch.no_grad():
        features = model.encoder(torch.from_numpy(mel[None])).numpy()
    return mel, features


@pytest.mark.parametrize("folder", ["onnx", "onnx-int8"])
def test_every_attention_is_one_multi_head_attention(tiny_model, folder):
    config = json.loads((tiny_model / folder / "config.json").read_text())
    for graph, count in ((ENCODER, config["encoder_layers"]), (DECODER_WITH_PAST, 2 * config["decoder_layers"])):
        ops = [n.op_type for n in onnx.load(str(tiny_model / folder / graph)).graph.node]
        assert ops.count("MultiHeadAttention") == count, graph
        assert "Softmax" not in ops, graph


def test_fp32_encoder_equals_openai_whisper(tiny_model, reference):
    mel, expected = reference
    got = OrtWhisper(tiny_model / "onnx", threads=2).encode(mel)
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() < 2e-3 * np.abs(expected).max()


def test_int8_encoder_stays_close_to_openai_whisper(tiny_model, reference):
    mel, expected = reference
    got = OrtWhisper(tiny_model / "onnx-int8", threads=2).encode(mel)
    cosine = (got * expected).sum(-1) / (np.linalg.norm(got, axis=-1) * np.linalg.norm(expected, axis=-1))
    error = np.abs(got - expected).mean() / np.abs(expected).mean()
    # Measured on this clip: mean cosine per frame 0.9959, mean error 12 % of the mean magnitude (one
    # activation scale per product; MatMulNBits in blocks of 32 gave 0.9998 and 2.6 %, at 1.9x the time).
    # The accuracy that matters, WER, is the gate's (docs/ort.md); this catches a broken graph (a wrong
    # scale or a dropped layer gives a cosine near 0).
    assert cosine.mean() > 0.99, cosine.mean()
    assert error < 0.2, error


@pytest.mark.parametrize("folder", ["onnx", "onnx-int8"])
def test_fused_decoder_steps_equal_the_exported_first_step_decoder(tiny_model, folder):
    """A 4-token prompt (causal self-attention from an empty cache), then one more token on the cache the
    first step wrote: last-position logits and caches equal the unfused decoder run on the whole sequence.
    int8's one-row step rounds its activations' blocks otherwise than the five-row product does (MatMulNBits
    picks its kernel by rows): 0.058 on logits of magnitude 33, exactly as much before the fusion."""
    import onnxruntime as ort

    config = json.loads((tiny_model / folder / "config.json").read_text())
    layers, heads = config["decoder_layers"], config["decoder_attention_heads"]
    head_dim = config["d_model"] // heads
    full = ort.InferenceSession(str(tiny_model / folder / "decoder_model.onnx"))
    fused = ort.InferenceSession(str(tiny_model / folder / DECODER_WITH_PAST))
    rng = np.random.default_rng(0)
    hidden = rng.standard_normal((1, 1500, config["d_model"])).astype(np.float32)
    tokens = np.array([[50257, 50362, 383, 2068, 2835]], dtype=np.int64)
    cross_names = [f"present.{i}.encoder.{kv}" for i in range(layers) for kv in ("key", "value")]
    self_names = [f"present.{i}.decoder.{kv}" for i in range(layers) for kv in ("key", "value")]
    cross = dict(zip(cross_names, full.run(cross_names, {"input_ids": tokens[:, :1],
                                                         "encoder_hidden_states": hidden})))
    cache = {n: np.zeros((1, heads, 0, head_dim), np.float32) for n in self_names}
    for start, stop in ((0, 4), (4, 5)):
        steps = tokens[:, start:stop]
        feeds = {"input_ids": steps, "position_ids": np.arange(start, stop, dtype=np.int64)[None],
                 SELF_ATTENTION_BIAS: np.zeros((1, 1, stop - start, stop), np.float32)}
        feeds.update({n.replace("present.", "past_key_values."): v for n, v in {**cross, **cache}.items()})
        got = fused.run(["logits", *self_names], feeds)
        want = full.run(["logits", *self_names], {"input_ids": tokens[:, :stop], "encoder_hidden_states": hidden})
        tolerance = 1e-3 if folder == "onnx" else 5e-3
        assert np.abs(got[0][:, -1] - want[0][:, -1]).max() < tolerance * np.abs(want[0]).max(), (folder, stop)
        for name, a, b in zip(self_names, got[1:], want[1:]):
            assert a.shape == b.shape and np.abs(a - b).max() < 1e-4 * max(1.0, np.abs(b).max()), (name, stop)
        cache = dict(zip(self_names, got[1:]))
