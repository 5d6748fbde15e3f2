import struct

import numpy as np
import pytest

from harness.models.ct2_reader import ModelFileError, read_ct2_bytes, read_ct2_model


def _string(s: str) -> bytes:
    raw = s.encode() + b"\0"
    return struct.pack("<H", len(raw)) + raw


def ct2_bytes(variables: dict, aliases: dict, version: int = 6) -> bytes:
    """A model.bin as CTranslate2's writer lays it out."""
    codes = {np.dtype(np.float32): 0, np.dtype(np.int8): 1, np.dtype(np.int16): 2, np.dtype(np.int32): 3,
             np.dtype(np.float16): 4}
    out = struct.pack("<I", version) + _string("WhisperSpec") + struct.pack("<I", 3)
    out += struct.pack("<I", len(variables))
    for name, value in variables.items():
        out += _string(name) + struct.pack("<B", value.ndim) + struct.pack(f"<{value.ndim}I", *value.shape)
        out += struct.pack("<B", codes[value.dtype]) + struct.pack("<I", value.nbytes) + value.tobytes()
    out += struct.pack("<I", len(aliases))
    for alias, target in aliases.items():
        out += _string(alias) + _string(target)
    return out


VARIABLES = {
    "decoder/embeddings/weight": np.arange(12, dtype=np.float16).reshape(4, 3),
    "encoder/num_heads": np.array(6, dtype=np.int32),
    "encoder/scale": np.array([1.5, -2.0], dtype=np.float32),
    "flags": np.array([1, 0, 1], dtype=np.int8),
}


def test_round_trip_reads_every_variable_and_alias(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(ct2_bytes(VARIABLES, {"decoder/projection/weight": "decoder/embeddings/weight"}))
    model = read_ct2_model(path)
    assert model.spec == "WhisperSpec" and model.revision == 3
    for name, value in VARIABLES.items():
        np.testing.assert_array_equal(model.variables[name], value)
        assert model.variables[name].dtype == value.dtype
    np.testing.assert_array_equal(model.get("decoder/projection/weight"), VARIABLES["decoder/embeddings/weight"])
    assert model.scalar("encoder/num_heads") == 6


def test_truncated_file_names_the_file(tmp_path):
    data = ct2_bytes(VARIABLES, {})
    path = tmp_path / "model.bin"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match=r"model\.bin: truncated"):
        read_ct2_model(path)


def test_unknown_version_and_trailing_bytes_are_corrupt(tmp_path):
    with pytest.raises(ModelFileError, match="binary version 99"):
        read_ct2_bytes(ct2_bytes(VARIABLES, {}, version=99), tmp_path / "m.bin")
    with pytest.raises(ModelFileError, match="unexpected bytes"):
        read_ct2_bytes(ct2_bytes(VARIABLES, {}) + b"\0\0\0\0\0", tmp_path / "m.bin")


def test_missing_file(tmp_path):
    with pytest.raises(ModelFileError, match="missing"):
        read_ct2_model(tmp_path / "nope" / "model.bin")
