"""BodyReader (a request body read by a worker thread, ``docker load``/``import``/``build``/
``cp``): one hop to the event loop gathers up to ``HOP`` bytes from however small the pieces
are that the server hands on (a hop each was a thread switch both ways per 64-256 KiB piece,
issue 18), and gives back exactly the body, whatever sizes it is read in."""

from __future__ import annotations

import asyncio
import io
import os
import threading

import pytest

from dockyard.images.streams import BodyReader

HOP = 1 << 20  # what one hop gathers (BodyReader.HOP)


class Pieces:
    """A request body's ``content``: ``read(n)`` gives at most ``piece`` bytes, after a
    yield to the loop (as a server waiting for the socket), and counts its callers' hops."""

    def __init__(self, data: bytes, piece: int) -> None:
        self.data, self.piece, self.pos = data, piece, 0

    async def read(self, n: int = -1) -> bytes:
        await asyncio.sleep(0)
        k = min(self.piece, n if n >= 0 else len(self.data), len(self.data) - self.pos)
        self.pos += k
        return self.data[self.pos - k:self.pos]


@pytest.fixture
def loop():
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join()
    loop.close()


def hops(monkeypatch) -> list[int]:
    import dockyard.images.streams as streams

    count = [0]
    real = streams.asyncio.run_coroutine_threadsafe

    def counted(coro, loop):
        count[0] += 1
        return real(coro, loop)

    monkeypatch.setattr(streams.asyncio, "run_coroutine_threadsafe", counted)
    return count


@pytest.mark.parametrize("size", [0, 1, 65536, HOP, HOP + 1, 5 * HOP + 12345])
def test_a_body_in_small_pieces_is_read_whole_in_few_hops(loop, monkeypatch, size):
    data = os.urandom(size)
    count = hops(monkeypatch)
    reader = io.BufferedReader(BodyReader(Pieces(data, 65536), loop), 1 << 20)
    assert reader.read() == data
    assert count[0] <= size // HOP + 1  # not one per 64 KiB piece


@pytest.mark.parametrize("read_size", [1, 511, 4096, 300_000, 3 << 20])
def test_any_read_size_gives_the_body_back_in_order(loop, read_size):
    data = os.urandom(3 * HOP + 777)
    raw = BodyReader(Pieces(data, 100_000), loop)
    out = bytearray()
    buf = bytearray(read_size)
    while n := raw.readinto(buf):
        out += buf[:n]
    assert bytes(out) == data
    assert raw.readinto(buf) == 0  # stays at the end
