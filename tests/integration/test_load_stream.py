"""``docker load`` on a storage driver that can stage layers (overlay: ``staging`` and
``reproducible-export``) unpacks each layer straight from the archive stream: the layer's
bytes are written once, as its files, never to a staged copy of the tar; the digest is
taken on the way and checked against the config's diff id when manifest.json and the
config have been read, whether they come before or after the layers; anything unverified
is rolled back. ``docker save`` re-creates the same layer tars from the unpacked layers."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from dockyard.errors import InvalidArgument
from dockyard.images import ImageService
from dockyard.images.archive import save_targets, write_archive
from dockyard.testing.images import hostile_image_tars, image_config, tar_from_entries
from dockyard_storage_overlay import OverlayDriver

pytestmark = pytest.mark.privileged


class Events:
    def emit(self, *a, **kw):
        pass


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def archive(path: Path, layers: list[bytes], diff_ids: list[str] | None = None, tag: str = "s:1",
            manifest_first: bool = False) -> Path:
    config = image_config([], cmd=["sh"])
    config["rootfs"]["diff_ids"] = diff_ids or ["sha256:" + sha(b) for b in layers]
    config["history"] = [{"created": config["created"], "created_by": "x"} for _ in layers]
    cbytes = json.dumps(config).encode()
    manifest = json.dumps([{"Config": f"blobs/sha256/{sha(cbytes)}", "RepoTags": [tag],
                            "Layers": [f"blobs/sha256/{sha(b)}" for b in layers]}]).encode()
    members = [(f"blobs/sha256/{sha(b)}", b) for b in layers] + [(f"blobs/sha256/{sha(cbytes)}", cbytes)]
    members = [("manifest.json", manifest), *members] if manifest_first else [*members, ("manifest.json", manifest)]
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def make_svc(root: Path) -> ImageService:
    return ImageService(root / "image", OverlayDriver({}, root / "storage", root / "state"), Events())


@pytest.fixture
def svc(tmp_path):
    return make_svc(tmp_path)


def load(svc, path: Path) -> list[str]:
    with open(path, "rb") as f:
        return svc.load(f, lambda msg: None)


def leftovers(svc) -> list[str]:
    return sorted(p.name for p in svc.driver.root.glob(".tmp-*")) + sorted(p.name for p in svc.tmp_dir.iterdir())


def watch_staging(svc, monkeypatch) -> list[int]:
    """The largest file under the image store's staging area, seen as each unpack ends."""
    seen: list[int] = []
    stage_layer = svc.driver.stage_layer

    def spy(tar):
        handle = stage_layer(tar)
        seen.append(max((p.stat().st_size for p in svc.tmp_dir.rglob("*") if p.is_file()), default=0))
        return handle

    monkeypatch.setattr(svc.driver, "stage_layer", spy)
    return seen


BIG = tar_from_entries([("etc", "dir", None)] + [(f"etc/f{i}", "file", os.urandom(4000)) for i in range(64)])
TOP = tar_from_entries([("etc/top", "file", "top\n")])


@pytest.mark.parametrize("manifest_first", [False, True])
def test_each_layer_is_written_once_in_either_order(tmp_path, svc, monkeypatch, manifest_first):
    gz = gzip.compress(TOP, mtime=0)
    path = archive(tmp_path / "a.tar", [BIG, gz], ["sha256:" + sha(BIG), "sha256:" + sha(TOP)],
                   manifest_first=manifest_first)
    staged_sizes = watch_staging(svc, monkeypatch)
    assert load(svc, path) == ["Loaded image: s:1\n"]
    assert len(staged_sizes) == 2
    assert max(staged_sizes) < 4000, "a layer's tar was staged before it was unpacked"
    assert leftovers(svc) == []
    image = svc.resolve("s:1")
    diff = lambda chain: svc.driver._dir(chain.split(":")[1]) / "diff"  # noqa: E731
    assert len((diff(image.chains[0]) / "etc" / "f7").read_bytes()) == 4000
    assert (diff(image.chains[1]) / "etc" / "top").read_text() == "top\n"
    assert svc.layers[image.chains[1]].tar_size == len(TOP)


@pytest.mark.parametrize("manifest_first", [False, True])
def test_an_unverified_layer_is_rolled_back(tmp_path, svc, manifest_first):
    path = archive(tmp_path / "bad.tar", [BIG, TOP], ["sha256:" + sha(BIG), "sha256:" + "0" * 64],
                   manifest_first=manifest_first)
    with pytest.raises(InvalidArgument, match="layer digest mismatch: config says sha256:0000"):
        load(svc, path)
    assert leftovers(svc) == []
    assert not svc.images and not svc.layers
    assert [p.name for p in svc.driver.root.iterdir() if p.name != "l"] == []


def test_a_corrupt_compressed_layer_fails_the_load(tmp_path, svc):
    bad = gzip.compress(TOP, mtime=0)[:30] + b"\0" * 600
    path = archive(tmp_path / "gz.tar", [BIG, bad], ["sha256:" + sha(BIG), "sha256:" + sha(TOP)])
    with pytest.raises(InvalidArgument):
        load(svc, path)
    assert leftovers(svc) == [] and not svc.layers


def test_a_tar_member_used_as_a_config_is_refused(tmp_path, svc):
    # the config's name points at a member that looks like a layer (it is streamed, not staged)
    path = archive(tmp_path / "c.tar", [BIG])
    with tarfile.open(path) as src, tarfile.open(tmp_path / "c2.tar", "w") as dst:
        for m in src.getmembers():
            data = src.extractfile(m).read()
            if m.name == "manifest.json":
                entry = json.loads(data)
                entry[0]["Config"] = f"blobs/sha256/{sha(BIG)}"
                data = json.dumps(entry).encode()
                m.size = len(data)
            dst.addfile(m, io.BytesIO(data))
    with pytest.raises(InvalidArgument, match="invalid"):
        load(svc, tmp_path / "c2.tar")
    assert leftovers(svc) == [] and not svc.layers


def test_save_after_a_streamed_load_round_trips(tmp_path, svc):
    """The same layer twice (two chains, one member) and a gzip layer: save writes the
    uncompressed layer tars from the unpacked layers, byte for byte the diff ids."""
    gz = gzip.compress(TOP, mtime=0)
    path = archive(tmp_path / "a.tar", [BIG, TOP, gz, TOP],
                   ["sha256:" + sha(BIG), "sha256:" + sha(TOP), "sha256:" + sha(TOP), "sha256:" + sha(TOP)])
    load(svc, path)
    image = svc.resolve("s:1")
    assert len(set(image.chains)) == 4
    out = tmp_path / "saved.tar"
    with open(out, "wb") as f:
        write_archive(svc, save_targets(svc, ["s:1"]), f)
    with tarfile.open(out) as tar:
        names = set(tar.getnames())
    assert {f"blobs/sha256/{sha(BIG)}", f"blobs/sha256/{sha(TOP)}"} <= names
    other = make_svc(tmp_path / "other")
    assert load(other, out) == ["Loaded image: s:1\n"]
    assert other.resolve("s:1").id == image.id
    assert other.resolve("s:1").chains == image.chains


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    return hostile_image_tars(tmp_path_factory.mktemp("hostile"))


def tree(root: Path) -> dict:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            out[str(p.relative_to(root))] = os.readlink(p) if p.is_symlink() else p.is_dir() or p.read_bytes()
    return out


@pytest.mark.parametrize("case", [
    "missing-blob", "config-digest-mismatch", "layer-digest-mismatch", "truncated-gzip", "dotdot-member",
    "absolute-member", "symlink-escape", "hardlink-escape", "second-image-bad", "oci-blob-mismatch", "garbage",
])
def test_hostile_archives_streamed_leave_the_store_unchanged(tmp_path, busybox_tar, hostile, case):
    svc = make_svc(tmp_path)
    load(svc, busybox_tar)
    before = tree(tmp_path)
    images_before = set(svc.images)
    with pytest.raises(InvalidArgument):
        load(svc, hostile[case])
    assert tree(tmp_path) == before
    assert set(svc.images) == images_before


def test_a_reader_held_back_by_the_read_ahead_limit_still_loads_every_layer(tmp_path, svc, monkeypatch):
    """With a one-byte read-ahead the archive reader waits for the unpackers after every
    chunk; layers queued behind busy workers must not stall it (nor the other way round)."""
    import dockyard.images.archive as archive_mod

    monkeypatch.setattr(archive_mod, "SPOOL_MAX", 1)
    layers = [tar_from_entries([(f"d{i}", "dir", None)] + [(f"d{i}/f{j}", "file", os.urandom(700_000))
                                                           for j in range(3)]) for i in range(5)]
    path = archive(tmp_path / "many.tar", layers, manifest_first=True)
    assert load(svc, path) == ["Loaded image: s:1\n"]
    assert len(svc.resolve("s:1").chains) == 5 and leftovers(svc) == []
    diff_ids = ["sha256:" + sha(b) for b in layers[:4]] + ["sha256:" + "1" * 64]
    bad = archive(tmp_path / "bad.tar", layers[:4] + [TOP], diff_ids)
    other = make_svc(tmp_path / "b")
    with pytest.raises(InvalidArgument, match="digest mismatch"):
        load(other, bad)
    assert leftovers(other) == [] and not other.layers


@pytest.mark.parametrize("cut", [100, 700_000, 1_500_000])
def test_an_archive_cut_inside_a_layer_member_is_refused_and_leaves_nothing(tmp_path, svc, cut):
    """The archive reader reads a member's data straight from tarfile's stream: a stream that
    ends inside it (at a chunk boundary or within one) is a bad archive, as through tarfile's
    own member reader, and the layer being unpacked from it is dropped."""
    layer = tar_from_entries([("d", "dir", None)] + [(f"d/f{j}", "file", os.urandom(700_000))
                                                     for j in range(3)])
    path = archive(tmp_path / "a.tar", [layer], manifest_first=True)
    data = path.read_bytes()
    start = data.index(layer[:512])  # the layer member's data
    path.write_bytes(data[:start + cut])
    with pytest.raises(InvalidArgument):
        load(svc, path)
    assert leftovers(svc) == [] and not svc.layers and not svc.images
