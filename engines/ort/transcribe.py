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
from .decoding import DecodeOptions, decode, decode_batch
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


class Windows:
    """One file's walk through its 30 s windows: the log-mel once, then one window at a time, each decoded
    with the previous windows' text as prompt; `advance` takes a window's tokens and moves the seek."""

    def __init__(self, model, tok, audio: np.ndarray, condition_on_previous_text: bool):
        t0 = time.perf_counter()
        self.tok, self.condition = tok, condition_on_previous_text
        self.mel = log_mel_spectrogram(audio, model.n_mels, padding=N_SAMPLES)
        self.content_frames = self.mel.shape[-1] - N_FRAMES
        self.seek, self.prompt_reset_since = 0, 0
        self.all_tokens: list[int] = []
        self.out = Transcript(text="", tokens=[])
        self.out.stage_s["features_s"] = time.perf_counter() - t0

    @property
    def done(self) -> bool:
        return self.seek >= self.content_frames

    def segment(self) -> np.ndarray:
        self.segment_size = min(N_FRAMES, self.content_frames - self.seek)
        return pad_or_trim(self.mel[:, self.seek:self.seek + self.segment_size], N_FRAMES)

    def prompt(self) -> list[int]:
        return self.all_tokens[self.prompt_reset_since:]

    def advance(self, tokens: list[int]) -> None:
        tok = self.tok
        time_offset = self.seek * HOP_LENGTH / SAMPLE_RATE
        new_segments, self.seek = _split_segments(tokens, tok.timestamp_begin, self.seek, self.segment_size,
                                                  time_offset)
        for seg in new_segments:
            seg["text"] = tok.decode(seg["tokens"])
            if seg["start"] == seg["end"] or not seg["text"].strip():
                seg["text"], seg["tokens"] = "", []
        self.out.segments.extend(s for s in new_segments if s["tokens"])
        self.all_tokens.extend(t for s in new_segments for t in s["tokens"])
        if not self.condition:
            self.prompt_reset_since = len(self.all_tokens)

    def result(self) -> Transcript:
        self.out.tokens = [t for t in self.all_tokens if t < self.tok.eot]
        self.out.text = "".join(s["text"] for s in self.out.segments).strip()
        return self.out


def transcribe(model, tok, audio: np.ndarray, options: DecodeOptions,
               condition_on_previous_text: bool = True) -> Transcript:
    file = Windows(model, tok, audio, condition_on_previous_text)
    while not file.done:
        segment = file.segment()
        t1 = time.perf_counter()
        features = model.encode(segment)
        t2 = time.perf_counter()
        result = decode(model, features, tok, file.prompt(), options, model.n_text_ctx)
        file.out.stage_s["encode_s"] += t2 - t1
        file.out.stage_s["decode_s"] += time.perf_counter() - t2
        file.advance(result.tokens)
    return file.result()


def transcribe_batch(model, tok, audios: list[np.ndarray], options: DecodeOptions,
                     condition_on_previous_text: bool = True) -> list[Transcript]:
    """Several files at once: each step encodes the current window of every file not yet done and decodes
    them together (`decode_batch`); every file still follows the sequential algorithm, so its transcript
    is the one `transcribe` gives. A step's encode and decode time is shared equally among the files in it.

    The windows are encoded one at a time: the encoder's products over 1500 positions already fill the
    cores, so a batch of 8 only multiplied its attention activations (base int8 at batch 8: peak RSS 1.8
    -> 1.2 GiB, and 0.9x the time); batching pays in the decoder, whose per-token products are small."""
    files = [Windows(model, tok, audio, condition_on_previous_text) for audio in audios]
    while active := [f for f in files if not f.done]:
        t1 = time.perf_counter()
        features = np.concatenate([model.encode(f.segment()) for f in active])
        t2 = time.perf_counter()
        results = decode_batch(model, features, tok, [f.prompt() for f in active], options, model.n_text_ctx)
        t3 = time.perf_counter()
        for f, result in zip(active, results):
            f.out.stage_s["encode_s"] += (t2 - t1) / len(active)
            f.out.stage_s["decode_s"] += (t3 - t2) / len(active)
            f.advance(result.tokens)
    return [f.result() for f in files]


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
