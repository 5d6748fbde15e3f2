"""Print one dependency group of pyproject.toml as a requirements file (used inside image builds).

    python3 requirements.py GROUP            the group's pinned requirements (with --no-binary lines
                                             for packages the group compiles from source; an engine-*
                                             group also gets the groups of [tool.whisper-bench] every-engine)
    python3 requirements.py --no-deps GROUP  packages of that group installed without dependencies
    python3 requirements.py --apt GROUP      Debian packages the group's source builds need
    python3 requirements.py --apt-runtime GROUP  Debian packages what they build needs at run time
    python3 requirements.py --env GROUP      NAME=VALUE lines the group's source builds run with
    python3 requirements.py --torch GROUP    the group's torch pin after an --extra-index-url line naming
                                             PyTorch's wheel index (TORCH_INDEX_URL, else pyproject.toml's
                                             [tool.whisper-bench.torch]); nothing for a group without torch
"""
import os
import shlex
import sys
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).with_name("pyproject.toml")
if not PYPROJECT.exists():  # run from the repository rather than the image
    PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def main(argv: list[str]) -> int:
    mode = argv[0] if len(argv) > 1 else ""
    group = argv[-1] if argv else ""
    data = tomllib.loads(PYPROJECT.read_text())
    groups = data["project"]["optional-dependencies"]
    if group not in groups:
        print(f"error: no dependency group {group!r} in pyproject.toml: {', '.join(groups)}", file=sys.stderr)
        return 2
    ours = data.get("tool", {}).get("whisper-bench", {})
    source_build = ours.get("source-build", {}).get(group, {})
    if mode == "--no-deps":
        lines = ours.get("no-deps", {}).get(group, [])
    elif mode == "--apt":
        lines = [" ".join(source_build.get("apt", []))]
    elif mode == "--apt-runtime":
        lines = [" ".join(source_build.get("apt-runtime", []))]
    elif mode == "--env":
        lines = [f"{k}={shlex.quote(v)}" for k, v in source_build.get("env", {}).items()]
    elif mode == "--torch":
        pins = [r for r in groups[group] if r.startswith("torch==")]
        index = os.environ.get("TORCH_INDEX_URL") or ours.get("torch", {}).get("index-url", "")
        # Only torch is looked up there: an index that cannot be reached costs pip a few retries per package.
        lines = ([f"--extra-index-url {index}"] if index and pins else []) + pins
    elif mode:
        print(f"error: unknown option {mode!r}", file=sys.stderr)
        return 2
    else:
        extra = [r for g in ours.get("every-engine", []) if group.startswith("engine-") for r in groups[g]]
        lines = [f"--no-binary {name}" for name in source_build.get("no-binary", [])] + groups[group] + extra
    if any(lines):  # an empty file, so that the Dockerfile's `[ -s FILE ]` skips the step
        print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
