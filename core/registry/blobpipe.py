"""A bounded pipe from the event loop (a blob download) to a worker thread (unpacking it).

The loop side awaits :meth:`BlobPipe.feed` (it waits while ``limit`` bytes are queued, so a
slow unpack slows the download instead of buffering the whole blob) and ends with
:meth:`finish` or :meth:`fail`. The thread side reads it as a raw binary file; after
:meth:`fail` its reads raise, so the unpacking stops and discards what it staged.
"""

from __future__ import annotations

import asyncio
import collections
import io
import threading
from typing import Any


class PipeAborted(Exception):
    """The other end of a :class:`BlobPipe` gave up."""


class BlobPipe(io.RawIOBase):
    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int = 8 << 20) -> None:
        self.loop, self.limit = loop, limit
        self.cond = threading.Condition()
        self.chunks: collections.deque[memoryview] = collections.deque()
        self.queued = 0
        self.eof = False
        self.error: BaseException | None = None
        self.reader_gone = False
        self.room = asyncio.Event()  # set by the reader when ``queued`` drops below ``limit``

    # -- loop side ----------------------------------------------------------------------------
    async def feed(self, data: bytes) -> None:
        while True:
            with self.cond:
                if self.reader_gone:
                    raise PipeAborted("the layer is no longer being unpacked")
                if self.queued < self.limit:
                    self.chunks.append(memoryview(data))
                    self.queued += len(data)
                    self.cond.notify()
                    return
                self.room.clear()
            await self.room.wait()

    def finish(self) -> None:
        with self.cond:
            self.eof = True
            self.cond.notify()

    def fail(self, exc: BaseException) -> None:
        with self.cond:
            self.error = exc
            self.cond.notify()

    # -- thread side --------------------------------------------------------------------------
    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        with self.cond:
            while not self.chunks and not self.eof and self.error is None:
                self.cond.wait()
            if self.error is not None:
                raise PipeAborted(f"layer download failed: {self.error}")
            if not self.chunks:
                return 0
            chunk = self.chunks[0]
            n = min(len(b), len(chunk))
            b[:n] = chunk[:n]
            if n == len(chunk):
                self.chunks.popleft()
            else:
                self.chunks[0] = chunk[n:]
            was_full = self.queued >= self.limit
            self.queued -= n
            if was_full and self.queued < self.limit:
                self.loop.call_soon_threadsafe(self.room.set)
        return n

    def close(self) -> None:
        """The reader is done (or gave up): a later :meth:`feed` raises instead of waiting."""
        with self.cond:
            self.reader_gone = True
            self.chunks.clear()
        try:
            self.loop.call_soon_threadsafe(self.room.set)
        except RuntimeError:  # the loop is closed: nobody is waiting
            pass
        super().close()
