"""The text normalisers WER and CER are computed under, each named with its version in metrics.json.

- `whisper-bench-en`: the project's own (harness/scoring/normalizer.py), documented in its module.
- `whisper-en`: Whisper's EnglishTextNormalizer (the Open ASR Leaderboard's and MLPerf's), from the
  light `whisper-normalizer` package. It writes "one two three" as "123" where ours writes "1 2 3".
The accuracy gate uses `GATE_NORMALIZER`; tables show both.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from . import normalizer


@dataclass(frozen=True)
class Normalizer:
    name: str
    version: str
    normalize: Callable[[str], str]


@cache
def _whisper_english() -> Callable[[str], str]:
    from whisper_normalizer.english import EnglishTextNormalizer

    return EnglishTextNormalizer()


def _whisper_version() -> str:
    from importlib import metadata

    return f"whisper-normalizer {metadata.version('whisper-normalizer')}"


@cache
def all_normalizers() -> tuple[Normalizer, ...]:
    return (Normalizer(normalizer.NAME, str(normalizer.VERSION), normalizer.normalize),
            Normalizer("whisper-en", _whisper_version(), lambda text: _whisper_english()(text)))


GATE_NORMALIZER = normalizer.NAME
