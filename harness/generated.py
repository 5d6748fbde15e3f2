"""Files derived from the engine specs and checked in: compose.yaml and docs/engines.md's engine table.
Host-side: the engines package only declares the specs; what is written from them lives here.

    python -m harness.generated --write     regenerate them
    python -m harness.generated --check     exit 1 when either is out of date (a test runs this)
"""
from __future__ import annotations

import sys
from pathlib import Path

from engines.registry import SPECS

from .layout import ROOT

COMPOSE = ROOT / "compose.yaml"
ENGINE_DOC = ROOT / "docs" / "engines.md"
TABLE_BEGIN = "<!-- engines:begin (generated from engines/registry.py) -->"
TABLE_END = "<!-- engines:end -->"

COMPOSE_HEAD = """\
# Generated from engines/registry.py by `python -m harness.generated --write`; do not edit by hand.
# One service per engine, with the harness's mounts and limits, run through scripts/compose-run.sh:
#   scripts/compose-run.sh ort             (or: make compose ENGINE=ort)
#   CPUSET=0-3 MEMORY_GB=4 MODEL=base PRECISION=int8 scripts/compose-run.sh faster-whisper
# which makes the results folder ${COMPOSE_RESULTS:-results/compose}/<engine>-<model>-<precision>/ (0755,
# never world-writable) owned by the user the container runs as (RUN_AS: you, or 1000:1000, the image's
# unprivileged user, when you are root) and then calls `docker compose run --rm <engine>` (v2) or
# `docker-compose run --rm <engine>` (v1). Needs the base image (scripts/build-base-image.sh, or
# BASE_IMAGE=debian:bookworm-slim where a registry is reachable), the model store (python -m harness models
# prepare) and the corpus (python -m harness audio synth).
x-engine: &engine
  user: "${RUN_AS:-1000:1000}"
  network_mode: none
  read_only: true
  tmpfs:
    - /tmp:size=1g,mode=1777
  security_opt:
    - no-new-privileges
  cap_drop:
    - ALL
  cpuset: "${CPUSET:-0}"
  mem_limit: "${MEMORY_GB:-8}g"
  memswap_limit: "${MEMORY_GB:-8}g"
  environment:
    RESULTS_DIR: /results

services:
"""

SERVICE = """\
  {name}:
    <<: *engine
    image: whisper-bench-{name}:latest
    build: {{context: ., dockerfile: docker/Dockerfile,
            args: {{BASE_IMAGE: "${{BASE_IMAGE:-whisper-bench-base:bookworm}}", ENGINE_GROUP: {group}}}}}
    volumes:
      - ./models/whisper-${{MODEL:-tiny.en}}:/models:ro
      - ${{AUDIO_DIR:-./audio/synth}}:/audio:ro
      - ${{COMPOSE_RESULTS:-./results/compose}}/{name}-${{MODEL:-tiny.en}}-${{PRECISION:-{default}}}:/results
    command: [{name}, --model-dir, /models, --model-name, "${{MODEL:-tiny.en}}", --audio-dir, /audio,
              --out, /results, --threads, auto, --precision, "${{PRECISION:-{default}}}"]
"""


def compose_text(specs=None) -> str:
    specs = SPECS if specs is None else specs
    return COMPOSE_HEAD + "\n".join(SERVICE.format(name=s.name, group=s.group, default=s.default_variant)
                                    for s in specs.values())


def engine_table(specs=None) -> str:
    specs = SPECS if specs is None else specs
    lines = ["| engine | runtime | variants (store format) |", "|---|---|---|"]
    for s in specs.values():
        variants = ", ".join(f"{v} ({fmt})" for v, fmt in s.variants.items())
        lines.append(f"| `{s.name}` | {s.runtime} | {variants} |")
    return "\n".join(lines)


def engine_doc_text(current: str, specs=None) -> str:
    start, end = current.find(TABLE_BEGIN), current.find(TABLE_END)
    if start == -1 or end < start:
        raise ValueError(f"{ENGINE_DOC}: the engine-table markers are missing")
    return current[:start] + f"{TABLE_BEGIN}\n{engine_table(specs)}\n" + current[end:]


def stale() -> list[Path]:
    out = []
    if not COMPOSE.is_file() or COMPOSE.read_text() != compose_text():
        out.append(COMPOSE)
    if engine_doc_text(ENGINE_DOC.read_text()) != ENGINE_DOC.read_text():
        out.append(ENGINE_DOC)
    return out


def main(argv: list[str]) -> int:
    if argv == ["--write"]:
        COMPOSE.write_text(compose_text())
        ENGINE_DOC.write_text(engine_doc_text(ENGINE_DOC.read_text()))
        return 0
    if argv == ["--check"]:
        out = stale()
        for path in out:
            print(f"{path.name} is out of date with engines/registry.py: run `python -m harness.generated --write`")
        return 1 if out else 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
