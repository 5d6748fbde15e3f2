"""Fleet files for the fleet tests: a [defaults] table and one [sut.<name>] table per SUT, and scripts/ on
the import path (second_dockerd.py starts the tests' second Docker engine)."""
import sys
from pathlib import Path

from conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))


def sut_table(name: str, docker: str, cpuset: str = "0", memory_gb: int | None = None, extra: str = "") -> str:
    """One SUT at one core; `extra`: more lines of TOML for it (transport settings, a price)."""
    memory = f"memory_gb = {memory_gb}\n" if memory_gb is not None else ""
    return f'[sut.{name}]\ndocker = "{docker}"\ncpuset = "{cpuset}"\n{memory}cores_list = "1"\n{extra}\n'


def write_fleet(folder: Path, engines: str, *suts: str) -> Path:
    """folder/fleet.toml: tiny.en, one round without warm-up, these engines, on these SUT tables."""
    path = folder / "fleet.toml"
    path.write_text(f'[defaults]\nmodel = "tiny.en"\nengines = "{engines}"\nrepeats = 1\nwarmup = 0\n\n'
                    + "\n".join(suts))
    return path
