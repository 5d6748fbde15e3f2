"""The interface every engine implements, and the decoding settings shared by all of them."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

# openai-whisper's default decode length: half of the text context (448 // 2), new tokens per window.
N_TEXT_CTX = 448
MAX_NEW_TOKENS_DEFAULT = N_TEXT_CTX // 2


@dataclass
class DecodingSettings:
    """One set of options drives every engine; engines report where they cannot honour one."""
    language: str | None = "en"
    task: str = "transcribe"
    beam_size: int = 1
    temperature: float = 0.0  # no temperature fallback
    max_new_tokens: int | None = None  # None: the engine's own limit (applied_decoding() says which)
    timestamps: bool = True
    condition_on_previous_text: bool = True
    vad: bool = False
    no_speech_threshold: float | None = None  # no silence skipping: every window is decoded
    batch_size: int = 1

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class FileResult:
    text: str
    n_tokens: int
    stage_s: dict = field(default_factory=dict)  # features_s, encode_s, decode_s where exposed
    tokens: list[int] | None = None  # the text tokens decoded, where the engine exposes them (parity tests)


class Engine:
    """Load once, transcribe one file at a time."""

    name = "engine"

    def __init__(self, model_dir: Path, settings: DecodingSettings, threads: int, precision: str):
        self.model_dir, self.settings, self.threads, self.precision = Path(model_dir), settings, threads, precision
        self.notes: list[str] = []  # how this engine differs from the common settings

    @property
    def variant(self) -> str:
        return self.precision

    def load(self) -> None:
        raise NotImplementedError

    def transcribe(self, audio: np.ndarray) -> FileResult:
        raise NotImplementedError

    def transcribe_batch(self, audios: list[np.ndarray]) -> list[FileResult]:
        """Several files at once (`--batch-size N`); engines without batching transcribe them in turn."""
        return [self.transcribe(a) for a in audios]

    def before_file(self) -> None:
        """Called before each file, outside the timed region: clear state that must not carry from one
        file to the next (no engine does work on the file here)."""

    def versions(self) -> dict[str, str]:
        return {}

    # Set by the runner's --profile before load: the folder an engine with a profiler writes into.
    profile_dir: Path | None = None
    # Set by the runner's --low-memory before load: trade speed for peak RSS where the engine can.
    low_memory: bool = False

    def finish(self) -> dict:
        """Called once after the last file (untimed): extra summary fields, e.g. a profile's top operators."""
        if self.profile_dir is not None:
            self.notes.append(f"--profile: no profiler for {self.name}")
        if self.low_memory:
            self.notes.append(f"--low-memory: nothing to trade in {self.name}")
        return {}

    def applied_decoding(self) -> dict:
        """The settings the engine actually applies (after load): the requested ones, with the engine's
        own values where it cannot honour one. Engines override `_applied_overrides`."""
        return {**self.settings.as_dict(), **self._applied_overrides()}

    def _applied_overrides(self) -> dict:
        return {"max_new_tokens": self.settings.max_new_tokens or MAX_NEW_TOKENS_DEFAULT}

    def model_path(self, subdir: str) -> Path:
        """The store folder's format subfolder, or the given folder if it already is one."""
        candidate = self.model_dir / subdir
        return candidate if candidate.is_dir() else self.model_dir


NOT_INSTALLED = "not installed"


def set_interop_threads(torch, n: int) -> None:
    """torch allows this once per process, before any parallel work: a second engine loaded in the same
    process (tests) keeps the first setting."""
    try:
        torch.set_num_interop_threads(n)
    except RuntimeError:
        pass


def package_versions(*names: str) -> dict[str, str]:
    """Installed distribution versions by name (the host's model store uses this too)."""
    from importlib import metadata

    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = NOT_INSTALLED
    return out
