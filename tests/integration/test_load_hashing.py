"""``docker load`` streams each layer member to its unpacker's thread, and that thread takes
the member's sha256 as it reads (the archive reader's thread is the load's bottleneck: issue
18). The digest must still cover every byte, in order: when the unpacker stops early (a
hostile layer), the archive reader hashes the rest itself, so the load reports the layer's
own error, not a digest mismatch."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
import threading
import types

import pytest

import dockyard.images.archive as archive_mod
from dockyard.errors import InvalidArgument
from dockyard.testing.images import tar_from_entries

from .test_load_stream import archive, leftovers, load, make_svc

pytestmark = pytest.mark.privileged


def test_layer_members_are_hashed_by_their_unpackers_not_the_archive_reader(tmp_path, monkeypatch):
    real = hashlib.sha256
    hashed: dict[str, int] = {}

    class Spy:
        def __init__(self, *a):
            self.h = real(*a)

        def update(self, data):
            name = threading.current_thread().name.split("_")[0]
            hashed[name] = hashed.get(name, 0) + len(data)
            self.h.update(data)

        def hexdigest(self):
            return self.h.hexdigest()

    monkeypatch.setattr(archive_mod, "hashlib", types.SimpleNamespace(sha256=Spy))
    layers = [tar_from_entries([(f"d{i}", "dir", None), (f"d{i}/big", "file", os.urandom(3_000_000))])
              for i in range(2)]
    svc = make_svc(tmp_path)
    assert load(svc, archive(tmp_path / "a.tar", layers)) == ["Loaded image: s:1\n"]
    assert len(svc.resolve("s:1").chains) == 2
    layer_bytes = sum(map(len, layers))
    assert hashed.get("layer-unpack", 0) >= layer_bytes
    assert sum(n for name, n in hashed.items() if name != "layer-unpack") < 100_000  # config, manifest


def hostile_layer() -> bytes:
    """1.5 MB of a good file, an absolute member (refused: the unpacker stops there, then
    drains the member), then 2 MB more."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, size in (("d/f0", 1_500_000), ("/abs", 10), ("d/f1", 2_000_000)):
            info = tarfile.TarInfo(name)
            info.size = size
            tar.addfile(info, io.BytesIO(os.urandom(size)))
    return buf.getvalue()


def corrupt_gzip_layer() -> bytes:
    """A gzip'd layer broken 1 MB in (the unpacker's decompression fails there and it stops
    reading), 3 MB of it left that only the archive reader reads (and hashes)."""
    text = bytes(b"abcdefghijklmnop"[b & 15] for b in os.urandom(8_000_000))  # ~50%: Huffman-coded blocks
    data = bytearray(gzip.compress(tar_from_entries([("d", "dir", None), ("d/big", "file", text)]), compresslevel=1))
    assert len(data) > 3_000_000
    data[1_000_000:1_000_064] = b"\xff" * 64
    return bytes(data)


@pytest.mark.parametrize("spool_max", [1, 8 << 20])
@pytest.mark.parametrize("layer, error", [(hostile_layer, "absolute path"), (corrupt_gzip_layer, "invalid layer data")])
def test_a_layer_refused_mid_member_is_hashed_whole_and_its_own_error_reported(tmp_path, monkeypatch, spool_max,
                                                                               layer, error):
    """The member's name is its digest: hashed wrong (a chunk missed or out of order where
    the unpacker gave up), the load would fail with a digest mismatch instead."""
    monkeypatch.setattr(archive_mod, "SPOOL_MAX", spool_max)
    svc = make_svc(tmp_path)
    with pytest.raises(InvalidArgument, match=error):
        load(svc, archive(tmp_path / "a.tar", [layer()]))
    assert leftovers(svc) == [] and not svc.layers and not svc.images
