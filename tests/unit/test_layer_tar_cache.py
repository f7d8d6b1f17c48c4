"""The layer tar cache of ``docker save`` (:mod:`dockyard.images.layercache`): entries appear
only when committed (temp file, fsync, rename), stay within their byte limit (least recently
used dropped first), and what a crash or a removed layer left is swept."""

from __future__ import annotations

import hashlib
import os
import time

from dockyard.images.layercache import LayerTarCache


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def put(cache: LayerTarCache, data: bytes) -> str:
    d = digest(data)
    w = cache.writer(d, len(data))
    assert w is not None
    w.write(data)
    assert cache.open(d, len(data)) is None  # not before the commit
    w.commit()
    return d


def test_commit_then_open_and_only_at_the_right_size(tmp_path):
    cache = LayerTarCache(tmp_path / "c", 1 << 20)
    d = put(cache, b"x" * 5000)
    with cache.open(d, 5000) as f:
        assert f.read() == b"x" * 5000
    assert cache.open(d, 4999) is None
    assert [p.name for p in (tmp_path / "c").iterdir()] == [d[7:]]


def test_abort_leaves_nothing(tmp_path):
    cache = LayerTarCache(tmp_path / "c", 1 << 20)
    w = cache.writer(digest(b"a"), 1)
    w.write(b"a")
    w.abort()
    assert list((tmp_path / "c").iterdir()) == []


def test_least_recently_used_go_first(tmp_path):
    cache = LayerTarCache(tmp_path / "c", 10000)
    a = put(cache, b"a" * 4000)
    b = put(cache, b"b" * 4000)
    old = time.time() - 100
    os.utime(cache._path(a), (old, old))
    os.utime(cache._path(b), (old - 50, old - 50))
    cache.open(b, 4000).close()  # used: now the most recent
    c = put(cache, b"c" * 4000)  # 12000 > 10000: the least recently used (a) goes
    names = {p.name for p in (tmp_path / "c").iterdir()}
    assert names == {b[7:], c[7:]}


def test_too_large_or_off(tmp_path):
    assert LayerTarCache(tmp_path / "c", 100).writer(digest(b"x"), 101) is None
    off = LayerTarCache(tmp_path / "d", 0)
    assert off.writer(digest(b"x"), 1) is None


def test_start_sweeps_temp_files_and_keep_only_drops_unknown(tmp_path):
    cache = LayerTarCache(tmp_path / "c", 1 << 20)
    a, b = put(cache, b"a" * 10), put(cache, b"b" * 10)
    (tmp_path / "c" / ".tmp-dead").write_bytes(b"half")  # a crash mid-write
    cache = LayerTarCache(tmp_path / "c", 1 << 20)
    cache.keep_only({a})
    assert [p.name for p in (tmp_path / "c").iterdir()] == [a[7:]]
    assert cache.clear() == 10 and list((tmp_path / "c").iterdir()) == []


def test_an_entry_whose_layer_went_meanwhile_is_not_kept(tmp_path):
    cache = LayerTarCache(tmp_path / "c", 1 << 20, wanted=lambda d: False)
    put(cache, b"gone")
    assert list((tmp_path / "c").iterdir()) == []


def test_a_failing_write_never_fails_the_caller(tmp_path):
    cache = LayerTarCache(tmp_path / "c", 1 << 20)
    d = digest(b"z")
    w = cache.writer(d, 1)
    os.close(w.fd)
    w.fd = os.open("/dev/full", os.O_WRONLY)  # ENOSPC
    w.write(b"z")
    w.commit()
    assert list((tmp_path / "c").iterdir()) == []
