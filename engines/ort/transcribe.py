"""Long-form transcription by openai-whisper's sequential 30 s window algorithm.

The whole file's log-mel is computed once (with 30 s of zero padding, so the last window is
zero-padded in log-mel space); each window is decoded with the previous windows' text as prompt, and
the next window starts at the last complete timestamp (timestamp mode) or 30 s later (no timestamps).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..audio import SAMPLE_RATE
from .decoding import DecodeOptions, decode
from .features import HOP_LENGTH, N_FRAMES, N_SAMPLES, log_mel_spectrogram, pad_or_trim

# Encoder frames per output position: conv2 has stride 2, so 3000 mel frames become 1500 positions.
INPUT_STRIDE = 2
TIME_PRECISION = INPUT_STRIDE * HOP_LENGTH / SAMPLE_RATE  # 0.02 s per timestamp token


@dataclass
class Transcript:
    text: str
    tokens: list[int]
    segments: list[dict] = field(default_factory=list)
    stage_s: dict = field(default_factory=lambda: {"features_s": 0.0, "encode_s": 0.0, "decode_s": 0.0})


def transcribe(model, tok, audio: np.ndarray, options: DecodeOptions,
               condition_on_previous_text: bool = True) -> Transcript:
    t0 = time.perf_counter()
    mel = log_mel_spectrogram(audio, model.n_mels, padding=N_SAMPLES)
    content_frames = mel.shape[-1] - N_FRAMES
    out = Transcript(text="", tokens=[])
    out.stage_s["features_s"] = time.perf_counter() - t0

    seek = 0
    all_tokens: list[int] = []
    prompt_reset_since = 0
    while seek < content_frames:
        time_offset = seek * HOP_LENGTH / SAMPLE_RATE
        segment_size = min(N_FRAMES, content_frames - seek)
        segment = pad_or_trim(mel[:, seek:seek + segment_size], N_FRAMES)
        t1 = time.perf_counter()
        features = model.encode(segment)
        t2 = time.perf_counter()
        result = decode(model, features, tok, all_tokens[prompt_reset_since:], options, model.n_text_ctx)
        t3 = time.perf_counter()
        out.stage_s["encode_s"] += t2 - t1
        out.stage_s["decode_s"] += t3 - t2

        tokens = result.tokens
        new_segments, seek = _split_segments(tokens, tok.timestamp_begin, seek, segment_size, time_offset)
        for seg in new_segments:
            seg["text"] = tok.decode(seg["tokens"])
            if seg["start"] == seg["end"] or not seg["text"].strip():
                seg["text"], seg["tokens"] = "", []
        out.segments.extend(s for s in new_segments if s["tokens"])
        all_tokens.extend(t for s in new_segments for t in s["tokens"])
        if not condition_on_previous_text:
            prompt_reset_since = len(all_tokens)
    out.tokens = [t for t in all_tokens if t < tok.eot]
    out.text = "".join(s["text"] for s in out.segments).strip()
    return out


def _split_segments(tokens: list[int], ts_begin: int, seek: int, segment_size: int,
                    time_offset: float) -> tuple[list[dict], int]:
    """Cut a window's tokens at consecutive timestamp pairs; return the segments and the next seek."""
    is_ts = [t >= ts_begin for t in tokens]
    single_ending = is_ts[-2:] == [False, True]
    consecutive = [i + 1 for i in range(len(tokens) - 1) if is_ts[i] and is_ts[i + 1]]
    segments = []
    if consecutive:
        slices = consecutive + ([len(tokens)] if single_ending else [])
        last = 0
        for cut in slices:
            part = tokens[last:cut]
            segments.append({"start": time_offset + (part[0] - ts_begin) * TIME_PRECISION,
                             "end": time_offset + (part[-1] - ts_begin) * TIME_PRECISION,
                             "tokens": part})
            last = cut
        if single_ending:
            seek += segment_size
        else:
            seek += (tokens[last - 1] - ts_begin) * INPUT_STRIDE
    else:
        duration = segment_size * HOP_LENGTH / SAMPLE_RATE
        stamps = [t for t in tokens if t >= ts_begin]
        if stamps and stamps[-1] != ts_begin:
            duration = (stamps[-1] - ts_begin) * TIME_PRECISION
        segments.append({"start": time_offset, "end": time_offset + duration, "tokens": tokens})
        seek += segment_size
    return segments, seek
