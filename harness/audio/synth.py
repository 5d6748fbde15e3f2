"""A deterministic English corpus with exact references, synthesized by espeak-ng and converted by sox.

Same bytes every run: the sentence choice is seeded, espeak-ng is deterministic for a given version,
and sox runs without dither (-D), whose noise would differ between runs.
"""
from __future__ import annotations

import json
import random
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from engines.audio import SAMPLE_RATE

from ..errors import UserError
from ..hashing import sha256_file
from .texts import SENTENCES

SEED = 20261121
# espeak-ng speaks about 15 % faster than its words-per-minute setting, pauses included.
ESPEAK_RATE_FACTOR = 1.15


@dataclass(frozen=True)
class ClipSpec:
    name: str
    bucket: str
    voice: str
    speed: int  # words per minute
    target_s: float


# About 3.3 minutes in four duration buckets: short, medium, 40 s and long-form (two and three 30 s windows).
# Short, because the replicate is the run and the time budget buys runs: on a 2-vCPU host a 10-minute corpus
# left room for less than one round of the default 24 cells in 20 minutes; this one for the screen round
# and several contender rounds. The long-form files keep the windowed decoding (and its conditioning) in.
DEFAULT_CLIPS = [
    ClipSpec("short-01", "5s", "en-us", 160, 5), ClipSpec("short-02", "5s", "en-gb", 175, 5),
    ClipSpec("short-03", "5s", "en-us+f3", 150, 5), ClipSpec("short-04", "5s", "en-gb-x-rp", 165, 5),
    ClipSpec("medium-01", "15-30s", "en-us", 170, 20), ClipSpec("medium-02", "15-30s", "en-gb+m3", 155, 25),
    ClipSpec("medium-03", "15-30s", "en-us+f2", 180, 18),
    ClipSpec("minute-01", "30-60s", "en-gb", 165, 40),
    ClipSpec("long-01", "60-90s", "en-us", 165, 75),
]


def require_tools() -> None:
    missing = [t for t in ("espeak-ng", "sox") if shutil.which(t) is None]
    if missing:
        raise UserError(f"{' and '.join(missing)} not found: install them (Debian: apt-get install espeak-ng sox)")


def text_for(spec: ClipSpec, rng: random.Random) -> str:
    words_needed = spec.target_s * spec.speed / 60 * ESPEAK_RATE_FACTOR
    sentences, words = [], 0
    pool = list(SENTENCES)
    rng.shuffle(pool)
    while words < words_needed * 0.9:
        if not pool:
            pool = list(SENTENCES)
            rng.shuffle(pool)
        sentence = pool.pop()
        sentences.append(sentence)
        words += len(sentence.split())
    return " ".join(sentences)


def synthesize(text: str, path: Path, voice: str = "en-us", speed: int = 160) -> None:
    """Speak `text` into a 16 kHz mono 16-bit WAV at `path`."""
    require_tools()
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(raw), text], check=True,
                       capture_output=True)
        subprocess.run(["sox", "-D", str(raw), "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", str(path)],
                       check=True, capture_output=True)


def synth_corpus(out_dir: Path, clips: list[ClipSpec] = DEFAULT_CLIPS, seed: int = SEED) -> dict:
    import soundfile as sf

    require_tools()
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    entries = []
    for spec in clips:
        text = text_for(spec, rng)
        wav = out_dir / f"{spec.name}.wav"
        synthesize(text, wav, spec.voice, spec.speed)
        (out_dir / f"{spec.name}.txt").write_text(text + "\n", encoding="utf-8")
        info = sf.info(str(wav))
        entries.append({"path": wav.name, "text": text, "bucket": spec.bucket, "voice": spec.voice,
                        "speed_wpm": spec.speed, "duration_s": round(info.duration, 3),
                        "sample_rate": info.samplerate, "sha256": sha256_file(wav)})
    manifest = {"seed": seed, "generator": _espeak_version(),
                "total_s": round(sum(e["duration_s"] for e in entries), 3), "files": entries}
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def _espeak_version() -> str:
    out = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True).stdout.strip()
    return out.split(" Data at")[0]
