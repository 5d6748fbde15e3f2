"""The runner's command line, built in one place.

Everything that launches `python -m engines <engine> ...` (the harness's containers, harness/run/container.py;
scripts/bench_engines.py on this host) builds the arguments here; engines/runner.py parses them. Standard
library only, so the host imports it without any engine's packages.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def runner_arguments(engine: str, *, model_dir: str | Path, audio_dir: str | Path, out: str | Path, threads: int,
                     precision: str, model_name: str | None = None, warmup: int = 1, repeats: int = 1,
                     batch_size: int = 1, extra: Sequence[str] = ()) -> list[str]:
    """The arguments after `python -m engines`: one engine variant on one corpus, results in `out`. `extra`
    are engine flags passed through as given (e.g. --beam-size 5)."""
    return [engine, "--model-dir", str(model_dir), *(["--model-name", model_name] if model_name else []),
            "--audio-dir", str(audio_dir), "--out", str(out), "--threads", str(threads), "--precision", precision,
            "--warmup", str(warmup), "--repeats", str(repeats), *extra,
            *(["--batch-size", str(batch_size)] if batch_size > 1 else [])]
