"""Print one dependency group of pyproject.toml as a requirements file (used inside image builds).

    python3 requirements.py GROUP            the group's pinned requirements (with --no-binary lines
                                             for packages the group compiles from source)
    python3 requirements.py --no-deps GROUP  packages of that group installed without dependencies
    python3 requirements.py --apt GROUP      Debian packages the group's source builds need
    python3 requirements.py --apt-runtime GROUP  Debian packages what they build needs at run time
    python3 requirements.py --env GROUP      NAME=VALUE lines the group's source builds run with
"""
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
    elif mode:
        print(f"error: unknown option {mode!r}", file=sys.stderr)
        return 2
    else:
        lines = [f"--no-binary {name}" for name in source_build.get("no-binary", [])] + groups[group]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
