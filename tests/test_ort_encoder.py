"""The store's ONNX encoders against openai-whisper's own PyTorch encoder, on the real tiny.en store and a
committed clip: the fp32 graph (attention fused into MultiHeadAttention) computes the same features, and the
int8 graph (dynamic int8 per channel) stays close to them."""
import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from engines.audio import load_audio
from engines.ort.features import log_mel_spectrogram, pad_or_trim
from engines.ort.model import ENCODER, OrtWhisper

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
def test_the_encoder_attention_is_one_multi_head_attention_per_layer(tiny_model, folder):
    ops = [n.op_type for n in onnx.load(str(tiny_model / folder / ENCODER)).graph.node]
    config = json.loads((tiny_model / folder / "config.json").read_text())
    assert ops.count("MultiHeadAttention") == config["encoder_layers"]
    assert "Softmax" not in ops


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
