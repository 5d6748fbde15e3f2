"""Audio loading for every engine: any file soundfile reads, as float32 mono at 16 kHz (numpy only)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".opus", ".aiff", ".aif", ".au")


class AudioError(ValueError):
    """An audio file that cannot be used; the message says why."""


def resample(audio: np.ndarray, orig_sr: int, target_sr: int = SAMPLE_RATE) -> np.ndarray:
    """Band-limited resampling in the frequency domain (the method of scipy.signal.resample)."""
    if orig_sr == target_sr or audio.size == 0:
        return audio
    n_out = int(round(audio.shape[0] * target_sr / orig_sr))
    spectrum = np.fft.rfft(audio.astype(np.float64))
    n_keep = min(spectrum.shape[0], n_out // 2 + 1)
    out_spec = np.zeros(n_out // 2 + 1, dtype=np.complex128)
    out_spec[:n_keep] = spectrum[:n_keep]
    return (np.fft.irfft(out_spec, n=n_out) * (n_out / audio.shape[0])).astype(np.float32)


def load_audio(path: str | Path) -> np.ndarray:
    import soundfile as sf

    path = Path(path)
    if path.stat().st_size == 0:
        raise AudioError("empty file (0 bytes)")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError, TypeError
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise AudioError(f"cannot decode audio: {reason}") from None
    if data.shape[0] == 0:
        raise AudioError("empty audio: the file holds no samples")
    mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if not np.all(np.isfinite(mono)):
        raise AudioError("audio holds NaN or infinite samples")
    return np.ascontiguousarray(resample(mono, sr), dtype=np.float32)


def list_audio(audio_dir: str | Path) -> list[Path]:
    """Every file in the folder (recursively) but references and manifests, sorted: a file that is
    not audio is kept so that it becomes an error row rather than a silent gap."""
    root = Path(audio_dir)
    skip = {".txt", ".json", ".jsonl", ".csv", ".md"}
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() not in skip
                  and not p.name.startswith("."))
