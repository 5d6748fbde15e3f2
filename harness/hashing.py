"""File digests, shared by the model store, its sources, the corpus and the fleet's transfers (a leaf
module: it imports nothing of the harness, so no stage has to import another stage for a hash)."""
from __future__ import annotations

import hashlib
from pathlib import Path

BLOCK = 1 << 22  # 4 MiB reads: model files run to gigabytes


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()
