"""Print one dependency group of pyproject.toml as a requirements file (used inside image builds).

    python3 requirements.py GROUP            the group's pinned requirements
    python3 requirements.py --no-deps GROUP  packages of that group installed without dependencies
"""
import sys
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).with_name("pyproject.toml")
if not PYPROJECT.exists():  # run from the repository rather than the image
    PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def main(argv: list[str]) -> int:
    no_deps = argv[:1] == ["--no-deps"]
    group = argv[-1] if argv else ""
    data = tomllib.loads(PYPROJECT.read_text())
    groups = data["project"]["optional-dependencies"]
    if group not in groups:
        print(f"error: no dependency group {group!r} in pyproject.toml: {', '.join(groups)}", file=sys.stderr)
        return 2
    if no_deps:
        lines = data.get("tool", {}).get("whisper-bench", {}).get("no-deps", {}).get(group, [])
    else:
        lines = groups[group]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
