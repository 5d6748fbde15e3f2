"""The fleet file: one table per SUT naming its Docker engine and its shape, plus shared defaults.

    [defaults]                 # what every SUT runs (the same keys as the environment of `make compare`)
    model = "tiny.en"
    engines = "ort:int8 faster-whisper:int8"
    repeats = 3

    [sut.epyc-9654]            # results/epyc-9654/
    docker = "ssh://bench@epyc.example"        # or "tcp://host:2376" with tls_ca/tls_cert/tls_key (`~` is
    cpuset = "0-15"                            # expanded), "unix:///var/run/docker.sock", or context = "name"
    memory_gb = 16
    cores_list = "4 8 16"
    price_per_core_hour = 0.021

The harness reaches each engine through Docker's own remote API and nothing of its own. A `tcp://` engine
without TLS (no tls_* files, or tls_verify = false) would send the engine's full control in the clear: it is
refused unless its table says `insecure = true`, and the report then marks that SUT's results.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError
from ..models.sources import NAME_RE
from ..run.settings import SETTINGS

SUT_KEYS = {"docker", "context", "tls_ca", "tls_cert", "tls_key", "tls_verify", "ssh_client", "insecure", "cpuset",
            "memory_gb", "cores_list", "price_per_core_hour"}
TLS_FILES = ("tls_ca", "tls_cert", "tls_key")
DEFAULT_KEYS = {s.dest for s in SETTINGS if s.fleet}   # the run settings a fleet file may set (run/settings.py)


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
    insecure: bool = False             # a tcp:// engine without (verified) TLS, accepted only when said so
    cpuset: str | None = None
    memory_gb: float | None = None
    cores_list: str | None = None
    price_per_core_hour: float | None = None


def plain_tcp(sut: FleetSut) -> bool:
    """A tcp:// engine reached without verified TLS."""
    return bool(sut.docker and sut.docker.startswith("tcp://")
                and (not (sut.tls_ca or sut.tls_cert) or not sut.tls_verify))


def check_transport(sut: FleetSut, where: str) -> None:
    """tcp:// needs TLS with verification (or `insecure = true`); the TLS files must exist."""
    for key in TLS_FILES:
        value = getattr(sut, key)
        if value and not Path(value).is_file():
            raise UserError(f"{where}: {key} = {value!r}: no such file")
    if sut.tls_cert and not sut.tls_key:
        raise UserError(f"{where}: tls_cert needs tls_key beside it")
    if plain_tcp(sut) and not sut.insecure:
        why = "tls_verify = false" if (sut.tls_ca or sut.tls_cert) else "no tls_ca/tls_cert/tls_key"
        raise UserError(f"{where}: {sut.docker} without verified TLS ({why}) gives anyone on the network the "
                        f"engine's full control: add the TLS files, or `insecure = true` to accept that "
                        f"(the report marks it)")
    if sut.insecure and not plain_tcp(sut):
        raise UserError(f"{where}: insecure = true applies only to a tcp:// engine without verified TLS")


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
        table = {k: (str(Path(v).expanduser()) if k in TLS_FILES and isinstance(v, str) else v)
                 for k, v in table.items()}
        sut = FleetSut(name=name, **table)
        check_transport(sut, f"{path}: [sut.{name}]")
        suts.append(sut)
    if not suts:
        raise UserError(f"{path}: no [sut.NAME] table")
    return Fleet(suts, defaults)
