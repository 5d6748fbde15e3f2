"""Spread and intervals of RTF over rounds and files, and paired comparisons between two cells.

RTF of one resample = sum of resampled per-file times / sum of the same files' audio. The bootstrap
resamples files and rounds with replacement (as multinomial weights, so its cost is linear in the
corpus). Two cells that ran the same files are compared paired: the same file resample for both,
and the same round resample when both ran the same rounds, so that what the machine did to a round
hits both sides of the ratio.
"""
from __future__ import annotations

import numpy as np

BOOTSTRAP_SAMPLES = 2000
SEED = 0
CHUNK = 250            # resamples per block: bounds memory at CHUNK x files
NOISY_CV_PCT = 5.0     # a cell whose per-round RTF varies more than this is flagged noisy


def _weights(rng, n: int, size: int) -> np.ndarray:
    return rng.multinomial(n, np.full(n, 1.0 / n), size=size).astype(np.float64)


def _resampled_rtf(times: np.ndarray, audio: np.ndarray, w_files: np.ndarray, w_rounds: np.ndarray) -> np.ndarray:
    """times (R, F), audio (F,), w_files (B, F), w_rounds (B, R) -> RTF per resample (B,)."""
    per_round = w_files @ times.T                       # (B, R): resampled processing time per round
    num = (per_round * w_rounds).sum(axis=1)
    den = (w_files @ audio) * w_rounds.sum(axis=1)
    return num / np.maximum(den, 1e-12)


def rtf_interval(times: np.ndarray, audio: np.ndarray, samples: int = BOOTSTRAP_SAMPLES,
                 seed: int = SEED) -> tuple[float, float] | None:
    """95 % interval of a cell's RTF, resampling files and rounds."""
    if times.size == 0 or times.shape[1] < 2:
        return None
    rng = np.random.default_rng(seed)
    out = []
    for start in range(0, samples, CHUNK):
        b = min(CHUNK, samples - start)
        out.append(_resampled_rtf(times, audio, _weights(rng, times.shape[1], b), _weights(rng, times.shape[0], b)))
    values = np.concatenate(out)
    return float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))


def paired_ratio(times_a: np.ndarray, times_b: np.ndarray, audio: np.ndarray, samples: int = BOOTSTRAP_SAMPLES,
                 seed: int = SEED, pair_rounds: bool = True) -> tuple[float, float, float] | None:
    """RTF(a) / RTF(b) with its 95 % interval: (point, low, high). times_* (R_*, F) on the same files;
    rounds are paired by index when both ran as many (the same run) and pair_rounds is set."""
    if times_a.size == 0 or times_b.size == 0 or times_a.shape[1] < 2:
        return None
    rng = np.random.default_rng(seed)
    same_rounds = pair_rounds and times_a.shape[0] == times_b.shape[0]
    out = []
    for start in range(0, samples, CHUNK):
        b = min(CHUNK, samples - start)
        w_files = _weights(rng, times_a.shape[1], b)
        w_a = _weights(rng, times_a.shape[0], b)
        w_b = w_a if same_rounds else _weights(rng, times_b.shape[0], b)
        out.append(_resampled_rtf(times_a, audio, w_files, w_a) / _resampled_rtf(times_b, audio, w_files, w_b))
    values = np.concatenate(out)
    point = float(times_a.sum() / times_a.shape[0]) / float(times_b.sum() / times_b.shape[0])
    return point, float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))


def spread(per_round: list[float]) -> dict:
    """Median, min and coefficient of variation (%) of per-round RTF."""
    if not per_round:
        return {"median": None, "min": None, "cv_pct": None}
    arr = np.asarray(per_round, dtype=np.float64)
    cv = float(arr.std(ddof=1) / arr.mean() * 100) if len(arr) > 1 and arr.mean() > 0 else None
    return {"median": float(np.median(arr)), "min": float(arr.min()), "cv_pct": cv}
