"""The run settings, in one table: each one's flag, environment variable, default and help. The command
line (`add_arguments`), the configuration (`config.build_config` reads values through `value`), the fleet
file's keys, the Makefile's exported variables and its `make help`, and the settings table in docs all
derive from it: a new setting is one line here and its use in build_config.

`python -m harness.run.settings --env-names` prints the variables (the Makefile exports them);
`--markdown` prints the table (docs/settings.md is generated from it).
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Setting:
    dest: str                 # the flag's dest (--cores-list -> cores_list), the fleet file's key
    env: str
    default: str | None       # as text, as the environment would give it; None: computed (see shown)
    help: str
    shown: str = ""           # the default in words, where it is computed
    main: bool = False        # one of the few most users need (README)
    fleet: bool = False       # settable in a fleet file's [defaults]

    @property
    def flag(self) -> str:
        return "--" + self.dest.replace("_", "-")

    @property
    def default_text(self) -> str:
        return self.shown or (self.default if self.default not in (None, "") else "none")


SETTINGS = [
    Setting("model", "MODEL", "tiny.en", "tiny.en, base, small, or a model you prepared", main=True, fleet=True),
    Setting("engines", "ENGINES", None, 'e.g. "ort faster-whisper:int8": an engine alone means all its variants; '
            '"all": every engine', shown="ort, faster-whisper, whisper-cpp, openvino", main=True, fleet=True),
    Setting("cores_list", "CORES_LIST", None, 'core counts, e.g. "1 2 4": one container shape each',
            shown="powers of two up to the usable CPUs", main=True),
    Setting("time_budget", "TIME_BUDGET", "25", "minutes of container runs; contenders race while it lasts "
            "(0: no budget)", main=True, fleet=True),
    Setting("repeats", "REPEATS", "1", "rounds every cell runs before the race", fleet=True),
    Setting("max_rounds", "MAX_ROUNDS", "12", "contenders race up to this many rounds", fleet=True),
    Setting("sut", "SUT_NAME", None, "name of the system under test (a folder under results/)", shown="host name"),
    Setting("cpuset", "CPUSET", None, "host CPUs to draw from, e.g. 0-7", shown="all usable"),
    Setting("memory_gb", "MEMORY_GB", "8", "container memory limit in GiB"),
    Setting("seed", "SEED", None, "seed of the rounds' order", shown="the time, recorded", fleet=True),
    Setting("warmup", "WARMUP", "1", "untimed warm-up transcriptions per run", fleet=True),
    Setting("batch_sizes", "BATCH_SIZES", "1", 'e.g. "1 8": each size > 1 adds a throughput cell per batching '
            "engine", fleet=True),
    Setting("timeout", "RUN_TIMEOUT_SEC", "3600", "seconds before a run is killed", fleet=True),
    Setting("heartbeat", "MODEL_PROGRESS_INTERVAL_SEC", "30", "seconds between heartbeat lines"),
    Setting("quiet_busy", "QUIET_BUSY", "0.1", "busy share of a cell's CPUs above which a run waits, and a run "
            "counts as loaded"),
    Setting("quiet_wait", "QUIET_WAIT_SEC", "30", "seconds a run waits for quiet CPUs"),
    Setting("results", "RESULTS_DIR", None, "results folder", shown="the repository's results/"),
    Setting("models_dir", "MODELS_DIR", None, "model store", shown="the repository's models/"),
    Setting("audio_dir", "AUDIO_DIR", None, "corpus: a folder of audio files (and references)",
            shown="the repository's audio/synth/"),
]
BY_DEST = {s.dest: s for s in SETTINGS}


def number(value, what: str, kind=float, minimum=0):
    """A setting's value as a number of `kind`, at least `minimum`, or one line naming the setting."""
    from ..errors import UserError

    try:
        v = kind(value)
    except (TypeError, ValueError):
        raise UserError(f"{what}={value!r} is not a number") from None
    if v < minimum:
        raise UserError(f"{what}={value!r} must be at least {minimum}")
    return v


def add_arguments(parser) -> None:
    for s in SETTINGS:
        parser.add_argument(s.flag, dest=s.dest, help=f"{s.help} (env {s.env}; default {s.default_text})")


def value(args, env, dest: str, default=None):
    """The flag, else the environment variable, else the table's default (or `default` for a computed one)."""
    s = BY_DEST[dest]
    given = getattr(args, dest, None)
    if given not in (None, ""):
        return given
    return env.get(s.env) or (s.default if s.default is not None else default)


def env_names() -> list[str]:
    return [s.env for s in SETTINGS]


def markdown() -> str:
    rows = ["| variable | flag | default | what it chooses |", "|---|---|---|---|"]
    rows += [f"| `{s.env}` | `{s.flag}` | {s.default_text} | {s.help} |" for s in SETTINGS]
    return "\n".join(rows) + "\n"


def main(argv: list[str]) -> int:
    if argv == ["--env-names"]:
        print(" ".join(env_names()))
    elif argv == ["--markdown"]:
        sys.stdout.write(markdown())
    elif argv == ["--help-lines"]:
        width = max(len(s.env) for s in SETTINGS)
        for s in SETTINGS:
            print(f"  {s.env:<{width}}  {s.help} (default {s.default_text})")
    else:
        print("usage: python -m harness.run.settings --env-names | --markdown | --help-lines", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    sys.exit(main(sys.argv[1:]))
