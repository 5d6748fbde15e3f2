"""A corpus: audio files with optional reference texts, from one of three layouts.

  - a folder with `name.txt` beside each audio file (the synthesized corpus uses this),
  - LibriSpeech: `*.trans.txt` files whose lines are `<utterance-id> <TEXT>`, audio `<utterance-id>.flac`,
  - a JSON-lines manifest: one `{"path": ..., "text": ...}` per line, paths relative to the manifest.
Files without a reference are kept (scored against the baseline engine only). A bad reference, a
manifest line pointing nowhere or two files with one name are errors that name the file.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from engines.audio import AUDIO_SUFFIXES

from ..errors import UserError


class CorpusError(UserError):
    pass


@dataclass(frozen=True)
class Utterance:
    key: str  # the file's path relative to the corpus root: what engines report as `file`
    path: Path
    reference: str | None


def _read_reference(path: Path) -> str:
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CorpusError(f"reference {path} is not UTF-8 (byte {exc.start})") from exc
    text = " ".join(text.split())
    if not text:
        raise CorpusError(f"reference {path} is empty")
    return text


def _check_unique(utterances: list[Utterance]) -> list[Utterance]:
    seen: dict[str, Path] = {}
    for u in utterances:
        stem = Path(u.key).with_suffix("").as_posix()
        if stem in seen:
            raise CorpusError(f"duplicate name {stem!r}: {seen[stem]} and {u.path}")
        seen[stem] = u.path
    return utterances


def _from_manifest(manifest: Path) -> list[Utterance]:
    out = []
    for n, line in enumerate(manifest.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            rel = entry["path"]
        except (ValueError, KeyError, TypeError):
            raise CorpusError(f"{manifest}:{n}: not a JSON object with a 'path'") from None
        path = (manifest.parent / rel).resolve()
        if not path.is_file():
            raise CorpusError(f"{manifest}:{n}: {rel} does not exist")
        text = entry.get("text")
        if text is not None and not " ".join(str(text).split()):
            raise CorpusError(f"{manifest}:{n}: reference text is empty")
        out.append(Utterance(str(rel), path, " ".join(str(text).split()) if text is not None else None))
    return out


def _from_librispeech(root: Path, trans_files: list[Path]) -> list[Utterance]:
    out = []
    for trans in trans_files:
        for n, line in enumerate(trans.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            utt_id, _, text = line.partition(" ")
            matches = [p for p in trans.parent.glob(f"{utt_id}.*") if p.suffix.lower() in AUDIO_SUFFIXES]
            if not matches:
                raise CorpusError(f"{trans}:{n}: no audio file for utterance {utt_id}")
            if not text.strip():
                raise CorpusError(f"{trans}:{n}: reference text of {utt_id} is empty")
            out.append(Utterance(str(matches[0].relative_to(root)), matches[0], " ".join(text.split())))
    return out


def _from_folder(root: Path) -> list[Utterance]:
    out = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES):
        ref = path.with_suffix(".txt")
        out.append(Utterance(str(path.relative_to(root)), path, _read_reference(ref) if ref.is_file() else None))
    return out


def load_corpus(location: str | Path) -> list[Utterance]:
    location = Path(location)
    if not location.exists():
        raise CorpusError(f"audio location {location} does not exist: run `python -m harness audio synth` "
                          "or pass a folder of your own")
    if location.is_file():
        return _check_unique(_from_manifest(location))
    manifests = sorted(location.glob("*.jsonl"))
    trans = sorted(location.rglob("*.trans.txt"))
    if manifests:
        utterances = [u for m in manifests for u in _from_manifest(m)]
    elif trans:
        utterances = _from_librispeech(location, trans)
    else:
        utterances = _from_folder(location)
    if not utterances:
        raise CorpusError(f"no audio files in {location}")
    return _check_unique(utterances)
