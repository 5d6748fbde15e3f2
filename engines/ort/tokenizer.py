"""Whisper's byte-level BPE tokenizer, read from `tokenizer.json` without Hugging Face.

Decoding is all the pipeline needs: special-token ids come from the added tokens, and
suppress lists from `generation_config.json`.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    # GPT-2's reversible map from bytes to printable characters.
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


class Tokenizer:
    def __init__(self, tokenizer_json: Path, generation_config: dict):
        data = json.loads(Path(tokenizer_json).read_text(encoding="utf-8"))
        self.id_to_token = {i: t for t, i in data["model"]["vocab"].items()}
        special = {a["content"]: a["id"] for a in data["added_tokens"]}
        for content, i in special.items():
            self.id_to_token[i] = content
        self.eot = special["<|endoftext|>"]
        self.sot = special["<|startoftranscript|>"]
        self.sot_prev = special["<|startofprev|>"]
        self.transcribe = special["<|transcribe|>"]
        self.translate = special["<|translate|>"]
        self.no_timestamps = special["<|notimestamps|>"]
        self.timestamp_begin = special["<|0.00|>"]
        self.lang_to_id = generation_config.get("lang_to_id") or {}
        self.is_multilingual = bool(generation_config.get("is_multilingual"))
        self.suppress_tokens = list(generation_config.get("suppress_tokens") or [])
        self.begin_suppress_tokens = list(generation_config.get("begin_suppress_tokens") or [220, self.eot])
        self.vocab_size = max(self.id_to_token) + 1
        # The generation config carries it (written by harness/models/hf_format.py); 50 = 1.0 s / 0.02 s.
        self.max_initial_timestamp_index = int(generation_config.get("max_initial_timestamp_index", 50))

    def sot_sequence(self, language: str | None, task: str) -> list[int]:
        seq = [self.sot]
        if self.is_multilingual:
            lang_token = f"<|{language or 'en'}|>"
            if lang_token not in self.lang_to_id:
                raise ValueError(f"language {language!r} is not known to this model")
            seq.append(self.lang_to_id[lang_token])
            seq.append(self.translate if task == "translate" else self.transcribe)
        return seq

    def decode(self, ids) -> str:
        """Text tokens only: special and timestamp tokens are dropped."""
        byte_decoder = _byte_decoder()
        text = "".join(self.id_to_token[i] for i in ids if i < self.eot)
        return bytes(byte_decoder[c] for c in text).decode("utf-8", errors="replace")
