"""Docker's detach keys: the key syntax and the scanner that finds them in stdin chunks."""

import asyncio

import pytest

from dockyard.containers.detachkeys import DetachScanner, parse_detach_keys
from dockyard.errors import InvalidArgument
from dockyard.runtime.dirwatch import DirWatcher


def test_parse_default_and_syntax():
    assert parse_detach_keys(None) == b"\x10\x11"
    assert parse_detach_keys("") == b"\x10\x11"
    assert parse_detach_keys("ctrl-p,ctrl-q") == b"\x10\x11"
    assert parse_detach_keys("ctrl-a,x") == b"\x01x"
    assert parse_detach_keys("ctrl-@,ctrl-[,ctrl-\\,ctrl-],ctrl-^,ctrl-_") == bytes([0, 27, 28, 29, 30, 31])
    assert parse_detach_keys("DEL") == b"\x7f"


@pytest.mark.parametrize("bad", ["ctrl-", "ctrl-1", "foo", "ctrl-p,,ctrl-q", "ctrl-P"])
def test_parse_rejects_bad_keys(bad):
    with pytest.raises(InvalidArgument, match="Invalid detach keys"):
        parse_detach_keys(bad)


def test_scanner_passes_data_without_keys():
    s = DetachScanner(b"\x10\x11")
    assert s.feed(b"echo hi\r") == (b"echo hi\r", False)
    assert s.feed(b"x" * 100000) == (b"x" * 100000, False)


def test_scanner_finds_keys_in_one_chunk_and_drops_the_rest():
    s = DetachScanner(b"\x10\x11")
    assert s.feed(b"ab\x10\x11cd") == (b"ab", True)


def test_scanner_across_chunks():
    s = DetachScanner(b"\x10\x11")
    assert s.feed(b"ab\x10") == (b"ab", False)  # held back: may be the start of the keys
    assert s.feed(b"\x11") == (b"", True)


def test_scanner_gives_back_a_false_start():
    s = DetachScanner(b"\x10\x11")
    assert s.feed(b"\x10") == (b"", False)
    assert s.feed(b"z") == (b"\x10z", False)
    assert s.feed(b"\x10\x10\x11") == (b"\x10", True)


def test_scanner_without_keys_is_transparent():
    assert DetachScanner(b"").feed(b"\x10\x11") == (b"\x10\x11", False)


def test_dirwatcher_wakes_on_a_change(tmp_path):
    async def go():
        with DirWatcher(tmp_path) as w:
            loop = asyncio.get_running_loop()
            loop.call_later(0.05, (tmp_path / "f").write_bytes, b"x")
            t0 = loop.time()
            await w.wait(30)
            woke = loop.time() - t0
            # changes before a wait count: the next wait returns at once
            (tmp_path / "f").write_bytes(b"y")
            await asyncio.sleep(0.01)
            t1 = loop.time()
            await w.wait(30)
            return woke, loop.time() - t1

    woke, again = asyncio.run(go())
    assert woke < 25 and again < 25  # woken by the change, not by the 30 s timeout


def test_dirwatcher_shares_watches_and_removes_them(tmp_path):
    async def go():
        a, b = DirWatcher(tmp_path), DirWatcher(tmp_path)
        assert a._wds == b._wds and a._inotify is b._inotify
        inotify = a._inotify
        a.close()
        assert inotify.users[b._wds[0]] == {b}
        b.close()
        assert not inotify.users

    asyncio.run(go())
