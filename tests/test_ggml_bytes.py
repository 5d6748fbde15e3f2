"""whisper.cpp's files as whisper.cpp's own tools write them, byte for byte, on the real tiny.en weights.

The references are independent of the project's writer: the f16 file is rebuilt here by the rules of
whisper.cpp's `models/convert-pt-to-ggml.py` from a float16 openai-whisper checkpoint (as OpenAI
releases them) and openai-whisper's own assets (mel_filters.npz, gpt2.tiktoken); the quantised files by
the rules of whisper.cpp's `quantize` tool run on that f16 file, with ggml's C quantiser
(`ggml_quantize_chunk` in the libggml-base that pywhispercpp ships) doing the blocks. The gguf package's
Python port of ggml's reference quantisers is checked on a real tensor as well.
"""
import base64
import ctypes
import struct
from pathlib import Path

import numpy as np
import pytest

from harness.models import ggml_format
from harness.models.openai_format import read_openai

pytestmark = pytest.mark.slow

GGML_TYPE_IDS = {"q8_0": 8, "q5_0": 6}                    # enum ggml_type
QUANTIZE_SKIPS = ("encoder.conv1.bias", "encoder.conv2.bias", "encoder.positional_embedding",
                  "decoder.positional_embedding")          # whisper.cpp quantize.cpp's to_skip


@pytest.fixture(scope="module")
def checkpoint(tiny_model) -> Path:
    return tiny_model / "openai" / "tiny.en.pt"


@pytest.fixture(scope="module")
def ours(tiny_model, checkpoint, tmp_path_factory) -> dict[str, bytes]:
    """The project's writer, run on the store's weights (the store's own files may predate it)."""
    from engines.ort.features import mel_filters

    state, dims = read_openai(checkpoint)
    out = tmp_path_factory.mktemp("ggml")
    files = {}
    for file_type in ("f16", "q8_0", "q5_0"):
        path = out / f"ggml-model-{file_type}.bin"
        ggml_format.write_ggml(path, state, dims, tiny_model / "hf" / "tokenizer.json", mel_filters(dims.n_mels),
                               file_type)
        files[file_type] = path.read_bytes()
    return files


def converter_f16(checkpoint: Path) -> bytes:
    """convert-pt-to-ggml.py's output for a float16 checkpoint: header, openai-whisper's mel filters,
    gpt2.tiktoken's tokens, then every tensor in state_dict order, f32 for 1-D tensors, the conv biases
    (reshaped to (n, 1)) and the positional embeddings, the checkpoint's f16 for the rest."""
    import torch
    import whisper

    loaded = torch.load(checkpoint, map_location="cpu", weights_only=True)
    dims = loaded["dims"]
    order = whisper.model.Whisper(whisper.model.ModelDimensions(**dims)).state_dict().keys()
    state = {k: loaded["model_state_dict"][k].half() for k in order}
    assets = Path(whisper.__file__).parent / "assets"
    filters = np.load(assets / "mel_filters.npz")[f"mel_{dims['n_mels']}"]
    vocab_file = "multilingual.tiktoken" if dims["n_vocab"] >= 51865 else "gpt2.tiktoken"
    tokens = [base64.b64decode(line.split()[0]) for line in (assets / vocab_file).read_bytes().splitlines() if line]
    out = [struct.pack("<12i", 0x67676D6C, *(dims[k] for k in (
        "n_vocab", "n_audio_ctx", "n_audio_state", "n_audio_head", "n_audio_layer", "n_text_ctx", "n_text_state",
        "n_text_head", "n_text_layer", "n_mels")), 1), struct.pack("<2i", *filters.shape),
        filters.astype("<f4").tobytes(), struct.pack("<i", len(tokens))]
    out += [struct.pack("<i", len(t)) + t for t in tokens]
    for name, tensor in state.items():
        data = tensor.squeeze().numpy()
        if name in ("encoder.conv1.bias", "encoder.conv2.bias"):
            data = data.reshape(data.shape[0], 1)
        as_f32 = data.ndim < 2 or name.endswith("positional_embedding") or name.startswith("encoder.conv") \
            and name.endswith(".bias")
        data = data.astype("<f4") if as_f32 else data.astype("<f2")
        encoded = name.encode()
        out.append(struct.pack("<3i", data.ndim, len(encoded), 0 if as_f32 else 1)
                   + struct.pack(f"<{data.ndim}i", *reversed(data.shape)) + encoded + data.tobytes())
    return b"".join(out)


def ggml_quantize_chunk():
    """ggml's own block quantiser from the libggml-base that pywhispercpp ships."""
    pywhispercpp = pytest.importorskip("pywhispercpp")
    libs = sorted((Path(pywhispercpp.__file__).parent.parent / "pywhispercpp.libs").glob("libggml-base*.so*"))
    if not libs:
        pytest.skip("pywhispercpp ships no libggml-base here")
    fn = ctypes.CDLL(str(libs[0])).ggml_quantize_chunk
    fn.restype = ctypes.c_size_t
    fn.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64,
                   ctypes.c_void_p]

    def quantize(rows: np.ndarray, file_type: str) -> bytes:
        rows = np.ascontiguousarray(rows, dtype=np.float32)
        out = np.zeros(rows.size * 2, dtype=np.uint8)
        n = fn(GGML_TYPE_IDS[file_type], rows.ctypes.data, out.ctypes.data, 0, rows.shape[0], rows.shape[1], None)
        return out[:n].tobytes()
    return quantize


def quantize_tool(f16_file: bytes, file_type: str, quantize) -> bytes:
    """whisper.cpp's `quantize` on an f16 file: header ftype 2000 + type, mel filters and vocabulary
    copied, every 2-D tensor not in its skip list quantised row by row from f32 (f16 widened), the rest copied."""
    header = list(struct.unpack_from("<12i", f16_file))
    header[11] = ggml_format.GGML_QNT_VERSION * ggml_format.GGML_QNT_VERSION_FACTOR + \
        ggml_format.FILE_TYPES[file_type][0]
    n_mel, n_fft = struct.unpack_from("<2i", f16_file, 48)
    pos = 56 + 4 * n_mel * n_fft
    (n_tokens,) = struct.unpack_from("<i", f16_file, pos)
    pos += 4
    for _ in range(n_tokens):
        pos += 4 + struct.unpack_from("<i", f16_file, pos)[0]
    out = [struct.pack("<12i", *header), f16_file[48:pos]]
    while pos < len(f16_file):
        n_dims, length, ttype = struct.unpack_from("<3i", f16_file, pos)
        ne = struct.unpack_from(f"<{n_dims}i", f16_file, pos + 12)
        name_end = pos + 12 + 4 * n_dims + length
        name = f16_file[name_end - length:name_end].decode()
        count = int(np.prod(ne))
        end = name_end + count * (4 if ttype == 0 else 2)
        data = f16_file[name_end:end]
        if n_dims == 2 and name not in QUANTIZE_SKIPS:
            values = np.frombuffer(data, dtype="<f4" if ttype == 0 else "<f2").astype(np.float32).reshape(ne[1], ne[0])
            ttype, data = ggml_format.FILE_TYPES[file_type][1], quantize(values, file_type)
        out.append(struct.pack("<3i", n_dims, length, ttype) + f16_file[pos + 12:name_end] + data)
        pos = end
    return b"".join(out)


def test_f16_file_is_byte_identical_to_whisper_cpp_converter(ours, checkpoint):
    pytest.importorskip("whisper")
    assert ours["f16"] == converter_f16(checkpoint)


@pytest.mark.parametrize("file_type", ["q8_0", "q5_0"])
def test_quantised_files_are_byte_identical_to_whisper_cpp_quantize(ours, file_type):
    assert ours[file_type] == quantize_tool(ours["f16"], file_type, ggml_quantize_chunk())


@pytest.mark.parametrize("file_type", ["q8_0", "q5_0"])
def test_blocks_equal_gguf_reference_quantiser_on_real_tensor(checkpoint, file_type):
    quants = pytest.importorskip("gguf.quants")
    from gguf.constants import GGMLQuantizationType

    state, _ = read_openai(checkpoint)
    rows = state["model.decoder.embed_tokens.weight"].astype(np.float16).astype(np.float32)
    theirs = quants.quantize(rows, GGMLQuantizationType[file_type.upper()]).tobytes()
    assert ggml_format.QUANTIZERS[file_type](rows) == theirs


def test_q8_0_rounds_halves_away_from_zero_like_c():
    # 0.5, 1.5, 2.5 steps of d = 127 / 127 = 1: roundf gives 1, 2, 3 (numpy's round would give 0, 2, 2)
    block = np.zeros(32, dtype=np.float32)
    block[:4] = [127, 0.5, 1.5, -2.5]
    q = np.frombuffer(ggml_format.quantize_q8_0(block), dtype=[("d", "<f2"), ("qs", "i1", 32)])["qs"][0]
    assert list(q[:4]) == [127, 1, 2, -3]
