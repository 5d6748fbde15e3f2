"""Reader for CTranslate2 `model.bin` files (binary version 6, little-endian), numpy only.

Layout, as written by `ctranslate2/specs/model_spec.py`:
    u32 binary version, str spec name, u32 spec revision, u32 variable count,
    per variable: str name, u8 rank, u32 dims[rank], u8 dtype, u32 byte count, bytes;
    u32 alias count, then (alias, target) string pairs.
Strings are a u16 length that counts a trailing NUL, then the bytes.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError

SUPPORTED_BINARY_VERSIONS = (5, 6)
# CTranslate2's dtype codes.
DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16, 5: "bfloat16"}


class ModelFileError(UserError):
    """A model file that cannot be read; the message names the file."""


@dataclass
class Ct2Model:
    spec: str
    revision: int
    variables: dict[str, np.ndarray]
    aliases: dict[str, str]

    def get(self, name: str) -> np.ndarray:
        return self.variables[self.aliases.get(name, name)]

    def scalar(self, name: str) -> int | float | bool:
        return self.variables[name].reshape(-1)[0].item()


class _Cursor:
    def __init__(self, data: memoryview, path: Path):
        self.data, self.pos, self.path = data, 0, path

    def take(self, n: int) -> memoryview:
        if self.pos + n > len(self.data):
            raise ModelFileError(
                f"{self.path}: truncated at byte {self.pos} of {len(self.data)} "
                f"(needs {n} more bytes): the file or one of its parts is incomplete")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return struct.unpack("<H", self.take(2))[0]

    def u32(self) -> int:
        return struct.unpack("<I", self.take(4))[0]

    def string(self) -> str:
        raw = bytes(self.take(self.u16()))
        if not raw.endswith(b"\0"):
            raise ModelFileError(f"{self.path}: malformed string at byte {self.pos}: the file is corrupt")
        return raw[:-1].decode("utf-8")


def _bf16_to_f32(raw: bytes, shape: tuple[int, ...]) -> np.ndarray:
    bits = np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16
    return bits.view(np.float32).reshape(shape)


def read_ct2_bytes(data: bytes | memoryview, path: Path) -> Ct2Model:
    cur = _Cursor(memoryview(data), path)
    version = cur.u32()
    if version not in SUPPORTED_BINARY_VERSIONS:
        raise ModelFileError(f"{path}: binary version {version} is not a CTranslate2 model.bin this reader knows "
                             f"({SUPPORTED_BINARY_VERSIONS}): the file is corrupt or not a model")
    spec = cur.string()
    revision = cur.u32()
    variables: dict[str, np.ndarray] = {}
    for _ in range(cur.u32()):
        name = cur.string()
        rank = cur.u8()
        shape = tuple(cur.u32() for _ in range(rank))
        code = cur.u8()
        if code not in DTYPES:
            raise ModelFileError(f"{path}: variable {name} has unknown dtype code {code}: the file is corrupt")
        nbytes = cur.u32()
        raw = bytes(cur.take(nbytes))
        dtype = DTYPES[code]
        if dtype == "bfloat16":
            array = _bf16_to_f32(raw, shape)
        else:
            expected = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
            if expected != nbytes:
                raise ModelFileError(f"{path}: variable {name} holds {nbytes} bytes, its shape {shape} "
                                     f"needs {expected}: the file is corrupt")
            array = np.frombuffer(raw, dtype=dtype).reshape(shape)
        variables[name] = array
    aliases = {}
    if version >= 6:
        for _ in range(cur.u32()):
            alias = cur.string()
            aliases[alias] = cur.string()
    if cur.pos != len(cur.data):
        raise ModelFileError(f"{path}: {len(cur.data) - cur.pos} unexpected bytes after the last record: "
                             "the file is corrupt or its parts were joined wrongly")
    return Ct2Model(spec=spec, revision=revision, variables=variables, aliases=aliases)


def read_ct2_model(path: str | Path) -> Ct2Model:
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: model file is missing")
    return read_ct2_bytes(path.read_bytes(), path)
