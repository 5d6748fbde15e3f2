"""One SUT's Docker engine through Docker's remote API: connecting, its host's fingerprint, the engine
images, and the inputs in named volumes (sent once, checked by sha256)."""
from __future__ import annotations

import io
import json
import sys
import tarfile
import tempfile
from pathlib import Path

from engines.registry import spec

from ..errors import UserError
from ..models.store import sha256_file
from ..run.host import HOST_FILES, host_facts
from ..run.images import build_images, image_tag
from .config import FleetSut

VOLUME_MANIFEST = ".whisper-bench.sha256.json"   # inside each input volume: relative path -> sha256
MOUNT = "/volume"


def connect(sut: FleetSut):
    """A client for the SUT's engine, pinged; UserError with one line when it cannot be reached."""
    from docker.errors import DockerException

    import docker

    try:
        if sut.context:
            from docker.context import ContextAPI

            ctx = ContextAPI.get_context(sut.context)
            if ctx is None:
                raise UserError(f"{sut.name}: no Docker context {sut.context!r} (`docker context ls`)")
            client = docker.DockerClient(base_url=ctx.Host, tls=ctx.TLSConfig, timeout=600)
        else:
            tls = None
            if sut.tls_cert or sut.tls_ca:
                tls = docker.tls.TLSConfig(client_cert=(sut.tls_cert, sut.tls_key) if sut.tls_cert else None,
                                           ca_cert=sut.tls_ca, verify=sut.tls_verify)
            client = docker.DockerClient(base_url=ssh_port_from_config(sut.docker), tls=tls, timeout=600,
                                         use_ssh_client=sut.ssh_client)
        client.ping()
    except (DockerException, OSError, ImportError) as exc:
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise UserError(f"{sut.name}: Docker engine {sut.docker or sut.context} is not reachable ({reason})") from None
    return client


def ssh_port_from_config(url: str) -> str:
    """An ssh:// URL without a port gets the one ~/.ssh/config gives its host, as with the docker CLI: the
    SDK would otherwise add :22, which both of its SSH transports then use over the config's Port."""
    from urllib.parse import urlparse

    parsed = urlparse(url)
    config = Path("~/.ssh/config").expanduser()
    if parsed.scheme != "ssh" or parsed.port or not parsed.hostname or not config.is_file():
        return url
    import paramiko

    ssh_config = paramiko.SSHConfig()
    with open(config) as f:
        ssh_config.parse(f)
    port = ssh_config.lookup(parsed.hostname).get("port")
    return f"ssh://{parsed.netloc}:{port}{parsed.path}" if port and port != "22" else url


def _run_helper(client, image: str, command: list[str], volumes: dict | None = None) -> tuple[int, bytes]:
    """A short unprivileged container on that engine (no network, read-only root); exit code and output."""
    container = client.containers.create(image, command, entrypoint=[], network_mode="none", read_only=True,
                                         security_opt=["no-new-privileges"], volumes=volumes or {})
    try:
        container.start()
        code = container.wait().get("StatusCode", 1)
        return code, container.logs(stdout=True, stderr=False)
    finally:
        container.remove(force=True)


def fingerprint(client, image: str, endpoint: str) -> dict:
    """What `run/host.py` records for the local host, from the same files read on the SUT's host by one
    container (a container sees the host's /proc/cpuinfo and /sys)."""
    info = client.info()
    # Only the readable files are printed, each after its key: a missing one is absent, as host_facts expects.
    script = "; ".join(f"if [ -r {path} ]; then echo '=== {key}'; cat {path}; fi" for key, path in HOST_FILES.items())
    _, out = _run_helper(client, image, ["sh", "-c", script])
    files = {key: text.strip() for key, _, text in
             (block.partition("\n") for block in out.decode(errors="replace").split("=== ")[1:])}
    return {"hostname": info.get("Name"), **host_facts(files), "kernel": info.get("KernelVersion"),
            "docker": info.get("ServerVersion"), "n_cpus": info.get("NCPU"), "memory_bytes": info.get("MemTotal"),
            "docker_endpoint": endpoint}


def ensure_images(client, local, engines: list[str], log_dir: Path, build: bool) -> dict:
    """engine -> (image id, error) on the SUT's engine: kept when it already holds the controller's image,
    else loaded from the controller's engine (docker save | docker load through the API), else built
    there from the repository."""
    from docker.errors import ImageNotFound

    out, to_build = {}, []
    for engine in dict.fromkeys(engines):
        tag = image_tag(engine)
        try:
            mine = local.images.get(tag) if local is not None else None
        except ImageNotFound:
            mine = None
        try:
            theirs = client.images.get(tag)
        except ImageNotFound:
            theirs = None
        if theirs is not None and (mine is None or theirs.id == mine.id):
            out[engine] = (theirs.id, None)
        elif mine is not None:
            print(f"  loading image {tag} onto the SUT's engine", file=sys.stderr)
            client.images.load(mine.save(named=True))
            out[engine] = (client.images.get(tag).id, None)
        elif build:
            to_build.append(engine)
        else:
            out[engine] = (None, f"image {tag} is on neither engine: build it with `python -m harness images`")
    if to_build:
        out.update(build_images(client, to_build, log_dir))
    return out


def model_files(model_dir: Path, engines: list[tuple[str, str]]) -> dict[str, str]:
    """The store files these engines read (relative path -> sha256), from the store's manifest where it
    lists them, hashed here for builds under variants/."""
    manifest = json.loads((model_dir / "manifest.json").read_text())
    folders = {spec(e).check_variant(v) for e, v in engines}
    files = {"manifest.json": sha256_file(model_dir / "manifest.json")}
    for folder in folders:
        listed = {rel: entry["sha256"] for rel, entry in manifest["files"].items() if rel.startswith(folder + "/")}
        if not listed:
            listed = {str(p.relative_to(model_dir)): sha256_file(p) for p in sorted((model_dir / folder).rglob("*"))
                      if p.is_file()}
        files.update(listed)
    return files


def audio_files(audio_dir: Path) -> dict[str, str]:
    return {str(p.relative_to(audio_dir)): sha256_file(p) for p in sorted(audio_dir.rglob("*")) if p.is_file()}


def sync_volume(client, volume: str, root: Path, files: dict[str, str], image: str) -> int:
    """Make the named volume hold these files (relative path -> sha256); returns the bytes sent. What the
    volume's own sha256 list already has is not sent again; the list is written last, so a transfer cut
    short is sent again next time."""
    from docker.errors import NotFound

    try:
        client.volumes.get(volume)
    except NotFound:
        client.volumes.create(volume, labels={"org.whisper-bench.inputs": "1"})
    code, out = _run_helper(client, image, ["cat", f"{MOUNT}/{VOLUME_MANIFEST}"],
                            {volume: {"bind": MOUNT, "mode": "ro"}})
    try:
        there = json.loads(out) if code == 0 else {}
    except ValueError:
        there = {}
    missing = [rel for rel, sha in files.items() if there.get(rel) != sha]
    if not missing and set(there) == set(files):
        return 0
    with tempfile.TemporaryFile() as buf:
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for folder in sorted({str(parent) for rel in missing for parent in Path(rel).parents} - {"."}):
                info = tarfile.TarInfo(folder)  # readable by the containers' unprivileged user
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            for rel in missing:
                info = tar.gettarinfo(str(root / rel), arcname=rel)
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                info.mode = 0o644
                with open(root / rel, "rb") as f:
                    tar.addfile(info, f)
            listing = json.dumps(files, sort_keys=True).encode()
            info = tarfile.TarInfo(VOLUME_MANIFEST)
            info.size, info.mode = len(listing), 0o644
            tar.addfile(info, io.BytesIO(listing))
        size = buf.tell()
        buf.seek(0)
        holder = client.containers.create(image, ["true"], entrypoint=[], network_mode="none",
                                          volumes={volume: {"bind": MOUNT, "mode": "rw"}})
        try:
            if not holder.put_archive(MOUNT, buf):
                raise UserError(f"could not write into volume {volume} on the SUT's engine")
        finally:
            holder.remove(force=True)
    return size
