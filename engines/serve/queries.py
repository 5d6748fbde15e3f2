"""The query sample library's samples: utterances of at most 30 s, the convention of MLPerf and the Open ASR
Leaderboard (Whisper's window).

A file up to 30 s is one query. A longer file is cut into windows of at most 30 s at pauses: each cut is
placed at the quietest 100 ms frame (lowest RMS) of the last 10 s before the 30 s limit, as a pause-based
segmenter would cut it, so that a cut rarely splits a word; a file with no pause there is cut at 30 s. The
windows of a file keep their order (`file`, `part`), so the host scores a file by joining its windows'
transcripts against the file's reference.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio import SAMPLE_RATE, AudioError, list_audio, load_audio

MAX_QUERY_S = 30.0      # Whisper's window: no query is longer
SEARCH_S = 10.0         # a cut is looked for in the last SEARCH_S seconds before MAX_QUERY_S
FRAME_S = 0.1           # the frame whose RMS marks a pause


@dataclass
class Query:
    index: int          # the sample's index in LoadGen's QSL
    file: str           # the audio file, relative to the corpus root
    part: int           # the window's position in its file (0 for a whole file)
    start_s: float
    end_s: float
    audio: np.ndarray

    @property
    def audio_s(self) -> float:
        return self.audio.shape[0] / SAMPLE_RATE

    def describe(self) -> dict:
        return {"index": self.index, "file": self.file, "part": self.part, "start_s": round(self.start_s, 3),
                "end_s": round(self.end_s, 3), "audio_s": round(self.audio_s, 3)}


def cut_points(audio: np.ndarray, sr: int = SAMPLE_RATE) -> list[int]:
    """Sample offsets of the window boundaries, first 0 and last len(audio)."""
    limit, search, frame = int(MAX_QUERY_S * sr), int(SEARCH_S * sr), int(FRAME_S * sr)
    points, start = [0], 0
    while audio.shape[0] - start > limit:
        lo = start + limit - search
        region = audio[lo:start + limit]
        n = region.shape[0] // frame
        rms = np.sqrt(np.mean(region[:n * frame].reshape(n, frame).astype(np.float64) ** 2, axis=1))
        quietest = int(np.argmin(rms)) if n else n
        cut = lo + quietest * frame + frame // 2 if n else start + limit
        points.append(cut)
        start = cut
    points.append(audio.shape[0])
    return points


def build_queries(audio_dir: str | Path) -> tuple[list[Query], list[dict]]:
    """Every decodable file's windows, in corpus order; and one line per file that could not be read."""
    root = Path(audio_dir)
    queries: list[Query] = []
    skipped = []
    for path in list_audio(root):
        rel = str(path.relative_to(root))
        try:
            audio = load_audio(path)
        except AudioError as exc:
            skipped.append({"file": rel, "error": str(exc)})
            continue
        bounds = cut_points(audio)
        for part, (a, b) in enumerate(zip(bounds, bounds[1:])):
            queries.append(Query(len(queries), rel, part, a / SAMPLE_RATE, b / SAMPLE_RATE, audio[a:b]))
    return queries, skipped
