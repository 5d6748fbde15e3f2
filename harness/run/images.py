"""Docker: reach the engine, provide the base image, build one image per engine (Docker SDK, classic builder).

Images are built by `make compare` (and `python -m harness images`); the tests build only `ort`'s."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from engines.registry import spec

from ..errors import UserError
from ..layout import ROOT

DOCKERFILE = "docker/Dockerfile"
LOCAL_BASE = "whisper-bench-base:bookworm"
HOST_CA_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt")
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


class ImageBuildError(RuntimeError):
    """An engine image could not be built; the message says which step failed."""


def docker_client():
    """A connected Docker SDK client, or one line saying how to get one."""
    from docker.errors import DockerException

    import docker

    try:
        client = docker.from_env(timeout=600)
        client.ping()
    except DockerException as exc:
        reason = str(exc).splitlines()[0][:200]
        raise UserError(f"Docker is not reachable ({reason}): run scripts/ensure-docker.sh "
                        f"(or `make docker`), or start Docker and check DOCKER_HOST") from None
    return client


def image_tag(engine: str) -> str:
    return f"whisper-bench-{engine}:latest"


def base_image() -> str:
    return os.environ.get("BASE_IMAGE") or LOCAL_BASE


def ensure_base_image(client) -> str:
    """The image every engine builds FROM: BASE_IMAGE if present or pullable, else a local debootstrap."""
    from docker.errors import ImageNotFound

    name = base_image()
    try:
        client.images.get(name)
        return name
    except ImageNotFound:
        pass
    script = ROOT / "scripts" / "build-base-image.sh"
    proc = subprocess.run(["bash", str(script)], env={**os.environ, "BASE_IMAGE": name},
                          capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise UserError(f"base image {name} could not be built: {last}")
    return name


def pinned_base(client, name: str) -> str:
    """The base image by digest (a registry's repo@sha256:..., else the local image's own sha256 id), so that
    every engine image builds FROM exactly the base that was checked, and records it (its base-image label)."""
    image = client.images.get(name)
    digests = image.attrs.get("RepoDigests") or []
    return digests[0] if digests else image.id


def stage_build_inputs(groups: set[str]) -> None:
    """Copy the host's CA bundle into docker/certs/ and, when an image needs torch, fetch the wheel the
    host's pip resolves from PyTorch's wheel index (the CPU build) into docker/wheels/."""
    certs = ROOT / "docker" / "certs"
    for bundle in HOST_CA_BUNDLES:
        if Path(bundle).is_file():
            shutil.copyfile(bundle, certs / "host-ca.crt")
            break
    wheels = ROOT / "docker" / "wheels"
    torch_args = next((args for args in map(torch_requirement, sorted(groups)) if args), [])
    if torch_args and not list(wheels.glob(f"torch-{torch_args[-1].split('==')[1]}*.whl")):
        proc = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                               "--python-version", "3.11", "-d", str(wheels), *torch_args],
                              capture_output=True, text=True)
        if proc.returncode != 0:  # the image's pip then tries the index itself
            print(f"note: host pip could not fetch {torch_args[-1]}; the image build will use the index",
                  file=sys.stderr)


def torch_requirement(group: str) -> list[str]:
    """pip arguments for the group's torch (the index option, then the pin), as the image build installs it;
    empty for a group without torch, or one requirements.py does not know (its image build then fails with
    that line, as a failed row)."""
    proc = subprocess.run([sys.executable, str(ROOT / "docker" / "requirements.py"), "--torch", group],
                          capture_output=True, text=True)
    return proc.stdout.split() if proc.returncode == 0 else []


def build_image(client, engine: str, group: str, base: str, log_path: Path) -> str:
    """Build (or refresh from cache) one engine image; returns its id. The full log goes to log_path."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    image_id, error, last_output = None, None, ""
    with open(log_path, "w", encoding="utf-8") as log:
        for chunk in client.api.build(path=str(ROOT), dockerfile=DOCKERFILE, tag=image_tag(engine), rm=True,
                                      forcerm=True, decode=True,
                                      buildargs={"BASE_IMAGE": base, "ENGINE_GROUP": group,
                                                 "TORCH_INDEX_URL": os.environ.get("TORCH_INDEX_URL", "")}):
            if "stream" in chunk:
                log.write(chunk["stream"])
                text = ANSI_ESCAPE.sub("", chunk["stream"])  # the daemon colours a step's stderr
                lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
                if lines and not lines[-1].startswith(("Step ", "---> ", "Removing intermediate")):
                    last_output = lines[-1]
            if "aux" in chunk and "ID" in chunk["aux"]:
                image_id = chunk["aux"]["ID"]
            if "error" in chunk:
                error = chunk["error"].strip()
                log.write(f"ERROR: {error}\n")
    if error or image_id is None:
        code = error.rsplit("non-zero code:", 1)[-1].strip() if error and "non-zero code" in error else None
        reason = (f"a build step failed (exit {code}): {last_output}" if code
                  else (error or "no image id").splitlines()[-1])
        raise ImageBuildError(f"image {image_tag(engine)}: {reason[:300]} (log: {log_path})")
    print(f"image {image_tag(engine)} ready in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return image_id


def build_images(client, engines: list[str], log_dir: Path) -> dict[str, tuple[str | None, str | None]]:
    """engine -> (image id, error); one failing image does not stop the others."""
    engines = list(dict.fromkeys(engines))
    base = pinned_base(client, ensure_base_image(client))
    stage_build_inputs({spec(e).group for e in engines})
    out = {}
    for engine in engines:
        print(f"building image {image_tag(engine)} from {base}", file=sys.stderr)
        try:
            out[engine] = (build_image(client, engine, spec(engine).group, base,
                                       log_dir / f"image-{engine}.log"), None)
        except ImageBuildError as exc:
            print(f"error: {exc}", file=sys.stderr)
            out[engine] = (None, str(exc))
        except Exception as exc:  # the Docker API can fail mid-build (daemon restart, disk full)
            print(f"error: image {image_tag(engine)}: {exc}", file=sys.stderr)
            out[engine] = (None, f"image {image_tag(engine)}: {str(exc).splitlines()[0][:300]}")
    return out


def existing_images(client, engines: list[str]) -> dict[str, tuple[str | None, str | None]]:
    from docker.errors import ImageNotFound

    out = {}
    for engine in dict.fromkeys(engines):
        try:
            out[engine] = (client.images.get(image_tag(engine)).id, None)
        except ImageNotFound:
            out[engine] = (None, f"image {image_tag(engine)} is missing: build it with `python -m harness images`")
    return out
