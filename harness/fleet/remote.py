"""One SUT's Docker engine through Docker's remote API: connecting, its host's fingerprint, the engine
images, and the inputs in named volumes.

An input volume is named by the sha256 of its file list (relative path -> sha256), so two controllers on
one engine share a volume only when they need the same bytes, and never overwrite each other's. What is in
it is re-hashed on the SUT (a helper container runs sha256sum) before every use: only what differs is sent,
and a volume that still does not hash to the list after that is an error, not an input. Helper containers
carry this controller's labels, so a killed controller's are removed by its next start."""
from __future__ import annotations

import hashlib
import json
import sys
import tarfile
import tempfile
from pathlib import Path

from engines.registry import spec

from ..errors import UserError
from ..hashing import sha256_file
from ..run.container import owner_labels
from ..run.host import HOST_FILES, host_facts
from ..run.images import build_images, image_tag
from .config import FleetSut

MOUNT = "/volume"
HELPER_LABEL = "org.whisper-bench.helper"    # short containers of the fleet (fingerprint, hashing, transfer)
INPUTS_LABEL = "org.whisper-bench.inputs"    # content-addressed input volumes (shared, never cleaned up)


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
            plain = str(ctx.Host or "").startswith("tcp://") and not (ctx.TLSConfig and ctx.TLSConfig.verify)
            if plain and not sut.insecure:
                raise UserError(f"{sut.name}: Docker context {sut.context!r} reaches {ctx.Host} without verified "
                                f"TLS: give the context TLS, or say `insecure = true` for this SUT")
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


def helper_container(client, image: str, command: list[str], volumes: dict):
    """A short container on that engine (no network, read-only root, no capabilities), labelled as this
    controller's helper."""
    return client.containers.create(image, command, entrypoint=[], network_mode="none", read_only=True,
                                    security_opt=["no-new-privileges"], cap_drop=["ALL"], pids_limit=256,
                                    labels={HELPER_LABEL: "1", **owner_labels()}, volumes=volumes)


def _run_helper(client, image: str, command: list[str], volumes: dict | None = None) -> tuple[int, bytes]:
    """A helper's exit code and output."""
    container = helper_container(client, image, command, volumes or {})
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


def input_volume(kind: str, files: dict[str, str]) -> str:
    """The volume's name: its kind and the sha256 of its file list."""
    digest = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:24]
    return f"whisper-bench-{kind}-{digest}"


def volume_hashes(client, volume: str, image: str) -> dict[str, str]:
    """Relative path -> sha256 of every regular file in the volume, hashed on the SUT."""
    code, out = _run_helper(client, image, ["sh", "-c", "cd " + MOUNT + " && find . -type f -exec sha256sum -- {} +"],
                            {volume: {"bind": MOUNT, "mode": "ro"}})
    found = {}
    for line in out.decode(errors="replace").splitlines():
        digest, _, rel = line.partition("  ")
        if rel.startswith("./"):
            found[rel[2:]] = digest
    return found


def sync_volume(client, volume: str, root: Path, files: dict[str, str], image: str) -> int:
    """Make the named volume hold exactly these files (relative path -> sha256), re-hashed there; returns the
    bytes sent (0 when it already did). A file it holds beyond the list is removed with the volume."""
    from docker.errors import APIError, NotFound

    try:
        client.volumes.get(volume)
        there = volume_hashes(client, volume, image)
    except NotFound:
        there = None
    if there is not None and set(there) - set(files):
        try:
            client.volumes.get(volume).remove()
        except APIError:
            raise UserError(f"volume {volume} holds files beyond its inputs and is in use: remove it on that "
                            f"engine (`docker volume rm {volume}`)") from None
        there = None
    if there is None:
        client.volumes.create(volume, labels={INPUTS_LABEL: "1"})
        there = {}
    if there == files:
        return 0
    size = _send(client, volume, root, [rel for rel, sha in files.items() if there.get(rel) != sha], image)
    after = volume_hashes(client, volume, image)
    if after != files:
        differ = sorted(rel for rel in set(files) | set(after) if after.get(rel) != files.get(rel))
        raise UserError(f"volume {volume}: {len(differ)} file(s) do not hash on the SUT to what was sent "
                        f"(first: {differ[0]}); remove the volume there and run again")
    return size


def _send(client, volume: str, root: Path, missing: list[str], image: str) -> int:
    """A tar of these files into the volume through a stopped helper container; the bytes sent."""
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
        size = buf.tell()
        buf.seek(0)
        holder = helper_container(client, image, ["true"], {volume: {"bind": MOUNT, "mode": "rw"}})
        try:
            if not holder.put_archive(MOUNT, buf):
                raise UserError(f"could not write into volume {volume} on the SUT's engine")
        finally:
            holder.remove(force=True)
    return size
