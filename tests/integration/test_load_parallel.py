"""``docker load`` unpacks layers while the archive is still being read (core/images/archive.py
``Unpacker``), in worker threads, on the real overlay driver: the guesses it makes must never
change what a load does. A layer used at two places of different chains, a gzip layer, a tar
blob no image uses, a layer whose diff id is wrong: same images and errors as a plain load,
and no staging directory left behind."""

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
from dockyard.testing.images import image_config, tar_from_entries
from dockyard_storage_overlay import OverlayDriver

pytestmark = pytest.mark.privileged


class Events:
    def emit(self, *a, **kw):
        pass


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def oci_archive(path: Path, images: list[tuple[list[bytes], list[str] | None, str]], extra: list[bytes] = ()) -> Path:
    """A docker-save (Docker 25+) tar: every blob under blobs/sha256; ``images`` is
    ``[(layer blobs as stored, diff ids or None (= the blobs' digests), tag)]``."""
    blobs: dict[str, bytes] = {}
    manifest = []
    for layers, diff_ids, tag in images:
        config = image_config([], cmd=["sh"])
        config["rootfs"]["diff_ids"] = diff_ids or ["sha256:" + sha(b) for b in layers]
        config["history"] = [{"created": config["created"], "created_by": "x"} for _ in layers]
        cbytes = json.dumps(config).encode()
        for b in [*layers, cbytes]:
            blobs[sha(b)] = b
        manifest.append({"Config": f"blobs/sha256/{sha(cbytes)}", "RepoTags": [tag],
                         "Layers": [f"blobs/sha256/{sha(b)}" for b in layers]})
    for b in extra:
        blobs[sha(b)] = b
    with tarfile.open(path, "w") as tar:
        for hexd, data in blobs.items():
            info = tarfile.TarInfo(f"blobs/sha256/{hexd}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        data = json.dumps(manifest).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def svc(tmp_path):
    driver = OverlayDriver({}, tmp_path / "storage", tmp_path / "state")
    return ImageService(tmp_path / "image", driver, Events())


def load(svc, path: Path) -> list[str]:
    with open(path, "rb") as f:
        return svc.load(f, lambda msg: None)


def leftovers(svc) -> list[str]:
    return sorted(p.name for p in svc.driver.root.glob(".tmp-*"))


def test_layers_unpacked_while_reading_make_the_same_images(tmp_path, svc):
    base = tar_from_entries([("etc", "dir", None), ("etc/base", "file", "base\n")] +
                            [(f"etc/f{i}", "file", os.urandom(3000)) for i in range(50)])
    top = tar_from_entries([("etc/top", "file", "top\n")])
    gz = gzip.compress(tar_from_entries([("gz", "file", "gzipped\n")]), mtime=0)
    unused = tar_from_entries([("never", "file", "unused\n")])
    archive = oci_archive(tmp_path / "a.tar", [
        ([base, top], None, "a:1"),
        ([top], None, "b:1"),  # top again, on another chain: unpacked twice
        ([base, gz], ["sha256:" + sha(base), "sha256:" + sha(gzip.decompress(gz))], "c:1"),
    ], extra=[unused])
    assert load(svc, archive) == ["Loaded image: a:1\n", "Loaded image: b:1\n", "Loaded image: c:1\n"]
    assert leftovers(svc) == []
    img_a, img_b, img_c = (svc.resolve(n) for n in ("a:1", "b:1", "c:1"))
    assert len(img_a.chains) == 2 and len(img_b.chains) == 1 and len(img_c.chains) == 2
    diff = lambda chain: svc.driver.root / svc.driver._dir(chain.split(":")[1]).name / "diff"  # noqa: E731
    assert (diff(img_a.chains[0]) / "etc" / "base").read_text() == "base\n"
    assert (diff(img_a.chains[1]) / "etc" / "top").read_text() == "top\n"
    assert (diff(img_b.chains[0]) / "etc" / "top").read_text() == "top\n"
    assert (diff(img_c.chains[1]) / "gz").read_text() == "gzipped\n"
    # the unused tar blob became no layer; every layer dir is one of the three images'
    layers = {p.name for p in svc.driver.root.iterdir() if p.name not in ("l",)}
    assert layers == {c.split(":")[1] for i in (img_a, img_b, img_c) for c in i.chains}


def test_a_wrong_diff_id_or_hostile_layer_is_refused_and_nothing_is_left(tmp_path, svc):
    good = tar_from_entries([("ok", "file", "ok\n")])
    archive = oci_archive(tmp_path / "bad.tar", [([good], ["sha256:" + "0" * 64], "bad:1")])
    with pytest.raises(InvalidArgument, match="digest mismatch"):
        load(svc, archive)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("../escape")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    archive = oci_archive(tmp_path / "hostile.tar", [([buf.getvalue()], None, "hostile:1")])
    with pytest.raises(InvalidArgument, match=r"\.\."):
        load(svc, archive)
    assert leftovers(svc) == []
    assert not svc.images and not svc.layers
    assert not (tmp_path / "escape").exists()
