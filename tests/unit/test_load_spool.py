"""The load's spool (``dockyard.images.archive._Spool``): its member's sha256 is taken by the
archive reader's thread and the unpacker's, whichever has time (issue 18), so chunks are
hashed by two threads in turn. The digest must be the member's, every byte once and in
order, however the two interleave: whether the unpacker reads it all, stops early (abandons)
or the reader gives up (close)."""

from __future__ import annotations

import hashlib
import os
import random
import threading
import time

import pytest

import dockyard.images.archive as archive_mod
from dockyard.images.archive import BadArchive, _Spool


class Budget:
    """What a spool needs of its Unpacker."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.buffered = 0
        self.spools: list[_Spool] = []


def chunks(seed: int) -> list[bytes]:
    rnd = random.Random(seed)
    return [os.urandom(rnd.choice((1, 100, 4096, 65536, 300_000))) for _ in range(rnd.randrange(20, 80))]


def run(data: list[bytes], seed: int, stop_after: int | None = None) -> tuple[str, list[bytes]]:
    """The reader puts ``data`` into a spool that a thread reads (abandoning it after
    ``stop_after`` chunks), both pausing at random; the spool's digest, and what was read."""
    rnd = random.Random(seed)
    budget = Budget()
    spool = _Spool(budget)  # type: ignore[arg-type]
    budget.spools.append(spool)
    got: list[bytes] = []
    delays = [rnd.choice((0, 0, 0, 0.001)) for _ in range(200)]

    def unpacker() -> None:
        try:
            while stop_after is None or len(got) < stop_after:
                chunk = spool.get()
                if not chunk:
                    return
                got.append(chunk)
                if delays[len(got) % 200]:
                    time.sleep(delays[len(got) % 200])
        finally:
            spool.abandon()

    t = threading.Thread(target=unpacker, name="layer-unpack_0")
    t.start()
    try:
        for i, chunk in enumerate(data):
            spool.put(chunk)
            if delays[(i * 7) % 200]:
                time.sleep(delays[(i * 7) % 200])
        spool.finish()
        digest = spool.digest()
    finally:
        spool.close()
        t.join()
    assert budget.buffered == 0
    return digest, got


@pytest.mark.parametrize("spool_max, lag", [(1, 1), (70_000, 1), (300_000, 150_000), (8 << 20, 4 << 20)])
@pytest.mark.parametrize("seed", range(4))
def test_the_digest_is_the_members_however_the_threads_share_the_hashing(monkeypatch, spool_max, lag, seed):
    monkeypatch.setattr(archive_mod, "SPOOL_MAX", spool_max)
    monkeypatch.setattr(archive_mod, "HASH_LAG", lag)
    data = chunks(seed)
    digest, got = run(data, seed)
    assert got == data
    assert digest == hashlib.sha256(b"".join(data)).hexdigest()


@pytest.mark.parametrize("spool_max", [1, 200_000, 8 << 20])
@pytest.mark.parametrize("seed", range(3))
def test_an_abandoned_member_is_still_hashed_whole_and_in_order(monkeypatch, spool_max, seed):
    monkeypatch.setattr(archive_mod, "SPOOL_MAX", spool_max)
    monkeypatch.setattr(archive_mod, "HASH_LAG", 1)
    data = chunks(seed)
    digest, got = run(data, seed, stop_after=5)
    assert got == data[:5]
    assert digest == hashlib.sha256(b"".join(data)).hexdigest()


def test_the_reader_hashes_while_the_spool_is_full(monkeypatch):
    """With the unpacker not reading, a reader waiting on a full spool hashes what it put
    (the member's digest then needs no more hashing by the unpacker)."""
    monkeypatch.setattr(archive_mod, "SPOOL_MAX", 1)
    budget = Budget()
    spool = _Spool(budget)  # type: ignore[arg-type]
    budget.spools.append(spool)
    spool.put(b"a" * 1000)
    reader = threading.Thread(target=spool.put, args=(b"b" * 1000,))
    reader.start()
    deadline = time.monotonic() + 10
    while spool.unhashed_bytes and time.monotonic() < deadline:
        time.sleep(0.005)
    hashed_while_full = spool.unhashed_bytes == 0
    assert spool.get() == b"a" * 1000  # makes room: the reader puts and returns
    reader.join()
    assert hashed_while_full
    assert spool.get() == b"b" * 1000
    spool.finish()
    assert spool.get() == b""
    assert spool.digest() == hashlib.sha256(b"a" * 1000 + b"b" * 1000).hexdigest()


def test_a_reader_that_gives_up_fails_the_unpacker():
    budget = Budget()
    spool = _Spool(budget)  # type: ignore[arg-type]
    budget.spools.append(spool)
    spool.put(b"x")
    spool.close()
    assert spool.get() == b"x"
    with pytest.raises(BadArchive):
        spool.get()
