"""The English text normaliser applied to references and hypotheses before WER/CER.

A documented equivalent of Whisper's English normaliser, small enough to read in one sitting:
  1. Unicode NFKC, lower case; text in brackets or parentheses removed (non-speech annotations).
  2. Contractions expanded (won't -> will not, n't -> not, 're -> are, 'll -> will, 've -> have, 'm -> am).
  3. British spellings of common words mapped to American (colour -> color).
  4. Spelled-out numbers written as digits (twenty five -> 25, one hundred and two -> 102), digit
     groups joined (1,000 -> 1000), % -> percent.
  5. Punctuation removed, hesitations (uh, um, hmm) dropped, whitespace collapsed.
"""
from __future__ import annotations

import re
import unicodedata

NAME = "whisper-bench-en"
VERSION = 1

UNITS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen".split())}
TENS = {w: 10 * i for i, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split(), 2)}
SCALES = {"thousand": 10 ** 3, "million": 10 ** 6, "billion": 10 ** 9}
HESITATIONS = {"uh", "um", "umm", "hmm", "mm", "mhm", "mmm", "ah", "er", "erm"}
CONTRACTIONS = [(r"\bwon't\b", "will not"), (r"\bcan't\b", "can not"), (r"\bshan't\b", "shall not"),
                (r"n't\b", " not"), (r"'re\b", " are"), (r"'ll\b", " will"), (r"'ve\b", " have"),
                (r"'m\b", " am")]
BRITISH_TO_AMERICAN = {
    "colour": "color", "colours": "colors", "harbour": "harbor", "harbours": "harbors", "neighbour": "neighbor",
    "neighbours": "neighbors", "favourite": "favorite", "honour": "honor", "labour": "labor",
    "behaviour": "behavior", "centre": "center", "centres": "centers", "metre": "meter", "metres": "meters",
    "theatre": "theater", "organise": "organize", "organised": "organized", "realise": "realize",
    "realised": "realized", "recognise": "recognize", "recognised": "recognized", "analyse": "analyze",
    "travelled": "traveled", "travelling": "traveling", "grey": "gray", "programme": "program",
    "catalogue": "catalog", "defence": "defense", "licence": "license", "modelling": "modeling",
}


def _numbers_to_digits(words: list[str]) -> list[str]:
    out: list[str] = []
    total = current = 0
    last = None  # kind of the previous number word: unit, teen, ten, hundred, scale
    in_number = False

    def flush():
        nonlocal total, current, last, in_number
        if in_number:
            out.append(str(total + current))
        total = current = 0
        last, in_number = None, False

    for i, word in enumerate(words):
        nxt = words[i + 1] if i + 1 < len(words) else ""
        if word in UNITS:
            value = UNITS[word]
            kind = "unit" if value < 10 else "teen"
            # "twenty five" continues a number; "one two" is two numbers.
            if in_number and not (last in ("hundred", "scale") or (last == "ten" and kind == "unit")):
                flush()
            current += value
            last, in_number = kind, True
        elif word in TENS:
            if in_number and last not in ("hundred", "scale"):
                flush()
            current += TENS[word]
            last, in_number = "ten", True
        elif word == "hundred" and in_number and last in ("unit", "teen", "ten"):
            current *= 100
            last = "hundred"
        elif word in SCALES and in_number:
            total += max(current, 1) * SCALES[word]
            current, last = 0, "scale"
        elif word == "and" and in_number and last in ("hundred", "scale") and (nxt in UNITS or nxt in TENS):
            continue
        else:
            flush()
            out.append(word)
    flush()
    return out


def normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"[<\[][^>\]]*[>\]]|\([^)]*\)", " ", text)
    text = text.replace("’", "'")
    for pattern, replacement in CONTRACTIONS:
        text = re.sub(pattern, replacement, text)
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)  # 1,000 -> 1000
    text = text.replace("%", " percent ")
    text = re.sub(r"(?<=\d)\.(?=\d)", "<point>", text)  # keep decimals through punctuation removal
    text = re.sub(r"[^\w\s<>]|_", " ", text).replace("<point>", ".")
    text = text.replace("<", " ").replace(">", " ")
    words = [BRITISH_TO_AMERICAN.get(w, w) for w in text.split() if w not in HESITATIONS]
    return " ".join(_numbers_to_digits(words))
