"""Corpus-level WER and CER (total errors / total reference units), per-file rows, and a bootstrap CI."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .normalizer import normalize

BOOTSTRAP_SAMPLES = 1000
BOOTSTRAP_SEED = 0


@dataclass
class Counts:
    ref_words: int
    word_errors: int
    substitutions: int
    deletions: int
    insertions: int
    ref_chars: int
    char_errors: int


def count_errors(reference: str, hypothesis: str) -> Counts:
    """Errors between two already-normalised texts."""
    import jiwer

    ref_words, hyp_words = reference.split(), hypothesis.split()
    if not ref_words:
        raise ValueError("reference is empty after normalisation")
    if not hyp_words:  # jiwer refuses empty strings: everything is a deletion
        return Counts(len(ref_words), len(ref_words), 0, len(ref_words), 0, len(reference), len(reference))
    w = jiwer.process_words(reference, hypothesis)
    c = jiwer.process_characters(reference, hypothesis)
    return Counts(len(ref_words), w.substitutions + w.deletions + w.insertions, w.substitutions, w.deletions,
                  w.insertions, len(reference), c.substitutions + c.deletions + c.insertions)


def score_pairs(pairs: list[tuple[str, str, str]], normalize=normalize) -> dict:
    """pairs: (key, reference, hypothesis) raw texts. Returns corpus metrics and per-file rows."""
    rows, counts = [], []
    for key, ref, hyp in pairs:
        nref, nhyp = normalize(ref), normalize(hyp)
        if not nref:
            rows.append({"file": key, "error": "reference empty after normalisation"})
            continue
        c = count_errors(nref, nhyp)
        counts.append(c)
        rows.append({"file": key, "wer": c.word_errors / c.ref_words, "cer": c.char_errors / c.ref_chars,
                     "ref_words": c.ref_words, "word_errors": c.word_errors, "substitutions": c.substitutions,
                     "deletions": c.deletions, "insertions": c.insertions, "reference": nref, "hypothesis": nhyp})
    if not counts:
        return {"n_files": 0, "wer": None, "cer": None, "wer_ci95": None, "per_file": rows}
    words = np.array([c.ref_words for c in counts])
    errors = np.array([c.word_errors for c in counts])
    return {
        "n_files": len(counts), "ref_words": int(words.sum()), "word_errors": int(errors.sum()),
        "substitutions": sum(c.substitutions for c in counts), "deletions": sum(c.deletions for c in counts),
        "insertions": sum(c.insertions for c in counts),
        "wer": float(errors.sum() / words.sum()),
        "cer": float(sum(c.char_errors for c in counts) / sum(c.ref_chars for c in counts)),
        "wer_ci95": bootstrap_ci(errors, words),
        "per_file": rows,
    }


def bootstrap_ci(errors: np.ndarray, words: np.ndarray, samples: int = BOOTSTRAP_SAMPLES,
                 seed: int = BOOTSTRAP_SEED) -> list[float]:
    """95 % interval of corpus WER, resampling files with replacement."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(errors), size=(samples, len(errors)))
    wers = errors[idx].sum(axis=1) / np.maximum(words[idx].sum(axis=1), 1)
    return [float(np.percentile(wers, 2.5)), float(np.percentile(wers, 97.5))]
