"""The fleet file: one table per SUT naming its Docker engine and its shape, plus shared defaults.

    [defaults]                 # what every SUT runs (the same keys as the environment of `make compare`)
    model = "tiny.en"
    engines = "ort:int8 faster-whisper:int8"
    repeats = 3

    [sut.epyc-9654]            # results/epyc-9654/
    docker = "ssh://bench@epyc.example"        # or "tcp://host:2376" with tls_ca/tls_cert/tls_key,
    cpuset = "0-15"                            # "unix:///var/run/docker.sock", or context = "name"
    memory_gb = 16
    cores_list = "4 8 16"
    price_per_core_hour = 0.021

The harness reaches each engine through Docker's own remote API and nothing of its own.
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError

SUT_KEYS = {"docker", "context", "tls_ca", "tls_cert", "tls_key", "tls_verify", "ssh_client", "cpuset",
            "memory_gb", "cores_list", "price_per_core_hour"}
DEFAULT_KEYS = {"model", "engines", "repeats", "max_rounds", "warmup", "timeout", "seed", "batch_sizes"}
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class FleetSut:
    name: str
    docker: str | None = None          # a Docker host URL: unix://, tcp:// (TLS with the tls_* files), ssh://
    context: str | None = None         # or a Docker context name
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_verify: bool = True
    # ssh:// through the OpenSSH client on PATH, as the docker CLI does (all of ~/.ssh/config, the agent,
    # ProxyJump), rather than paramiko (which reads only Hostname, Port, User, IdentityFile, ProxyCommand).
    ssh_client: bool = False
    cpuset: str | None = None
    memory_gb: float | None = None
    cores_list: str | None = None
    price_per_core_hour: float | None = None


@dataclass
class Fleet:
    suts: list[FleetSut]
    defaults: dict = field(default_factory=dict)


def load_fleet(path: Path) -> Fleet:
    if not path.is_file():
        raise UserError(f"fleet file {path} does not exist: copy fleet.example.toml and name your SUTs")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: not valid TOML ({exc})") from None
    unknown = set(data) - {"defaults", "sut"}
    if unknown:
        raise UserError(f"{path}: unknown table(s) {', '.join(sorted(unknown))}: use [defaults] and [sut.NAME]")
    defaults = data.get("defaults", {})
    bad = set(defaults) - DEFAULT_KEYS
    if bad:
        raise UserError(f"{path}: [defaults] has unknown key(s) {', '.join(sorted(bad))}; "
                        f"known: {', '.join(sorted(DEFAULT_KEYS))}")
    suts = []
    for name, table in (data.get("sut") or {}).items():
        if not NAME_RE.fullmatch(name):
            raise UserError(f"{path}: SUT name {name!r}: use letters, digits, '.', '_' and '-'")
        bad = set(table) - SUT_KEYS
        if bad:
            raise UserError(f"{path}: [sut.{name}] has unknown key(s) {', '.join(sorted(bad))}; "
                            f"known: {', '.join(sorted(SUT_KEYS))}")
        if bool(table.get("docker")) == bool(table.get("context")):
            raise UserError(f"{path}: [sut.{name}] needs exactly one of docker = \"URL\" or context = \"NAME\"")
        suts.append(FleetSut(name=name, **table))
    if not suts:
        raise UserError(f"{path}: no [sut.NAME] table")
    return Fleet(suts, defaults)
