"""Byte-stream helpers: compression sniffing, hashing readers, iterator-as-file, and the
bridges between a request/response (``dockyard.http.web``) on the event loop and a worker thread."""

from __future__ import annotations

import asyncio
import bz2
import collections
import hashlib
import io
import lzma
import os
import zlib
from typing import Any, BinaryIO, Callable, Iterator

from ..errors import InvalidArgument, NotSupported

GZIP_MAGIC = b"\x1f\x8b"
BZIP2_MAGIC = b"BZh"
XZ_MAGIC = b"\xfd7zXZ\x00"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"

#: what the image code reads from or writes to: a file, or one of the raw streams below
#: (request bodies, registry blobs, iterators) that are io.RawIOBase, not typing.BinaryIO
ByteStream = BinaryIO | io.RawIOBase


def sniff(head: bytes) -> str:
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(BZIP2_MAGIC):
        return "bzip2"
    if head.startswith(XZ_MAGIC):
        return "xz"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    return "none"


def decompressed(stream: ByteStream) -> BinaryIO:
    """``stream`` (buffered, peekable or not) decompressed according to its magic bytes."""
    if not isinstance(stream, io.BufferedReader):
        stream = io.BufferedReader(stream, 1 << 20)  # type: ignore[arg-type, type-var]
    kind = sniff(stream.peek(8)[:8])
    if kind == "gzip":
        import gzip  # here: an idle daemon has no gzip stream (bz2 and lzma come with shutil)

        return gzip.GzipFile(fileobj=stream, mode="rb")  # type: ignore[return-value]
    if kind == "bzip2":
        return bz2.BZ2File(stream, "rb")  # type: ignore[return-value]
    if kind == "xz":
        return lzma.LZMAFile(stream, "rb")  # type: ignore[return-value]
    if kind == "zstd":
        raise NotSupported("zstd-compressed layers are not supported yet")
    return stream


class HashingReader(io.RawIOBase):
    """Reads through ``inner``, hashing (sha256) and counting; decompression errors are 400s."""

    def __init__(self, inner: ByteStream, on_progress: Callable[[int], None] | None = None,
                 verified: str | None = None) -> None:
        self.inner = inner
        self.hash = hashlib.sha256()
        self.count = 0
        self.on_progress = on_progress
        self.verified = verified  # the digest is already known: count, don't hash

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        try:
            data = self.inner.read(len(b))
        except (EOFError, OSError, lzma.LZMAError, ValueError, zlib.error) as exc:  # zlib: a corrupt gzip block
            raise InvalidArgument(f"invalid layer data: {exc or type(exc).__name__}") from None
        n = len(data)
        b[:n] = data
        if n:
            if self.verified is None:
                self.hash.update(data)
            self.count += n
            if self.on_progress is not None:
                self.on_progress(self.count)
        return n

    def drain(self) -> None:
        while self.read(1 << 20):
            pass

    @property
    def digest(self) -> str:
        return self.verified or "sha256:" + self.hash.hexdigest()


class IterReader(io.RawIOBase):
    """A file-like view of an iterator of byte chunks."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = iter(chunks)
        self.buf = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self.buf:
            try:
                self.buf = next(self.chunks)
            except StopIteration:
                return 0
        n = min(len(b), len(self.buf))
        b[:n] = self.buf[:n]
        self.buf = self.buf[n:]
        return n

    def close(self) -> None:
        close = getattr(self.chunks, "close", None)
        if close is not None:
            close()
        super().close()


class BodyReader(io.RawIOBase):
    """A request body read from a worker thread: each hop to the event loop gathers up to
    ``HOP`` bytes (the server hands a body on in pieces of its read-ahead, some 64-256 KiB:
    a hop each was a thread switch both ways per piece), kept as the pieces they came in."""

    HOP = 1 << 20

    def __init__(self, content: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.content, self.loop = content, loop
        self.chunks: collections.deque[memoryview] = collections.deque()
        self.eof = False

    def readable(self) -> bool:
        return True

    async def _gather(self) -> list[bytes]:
        out: list[bytes] = []
        have = 0
        while have < self.HOP:
            chunk = await self.content.read(self.HOP - have)
            if not chunk:
                break
            out.append(chunk)
            have += len(chunk)
        return out

    def readinto(self, b: Any) -> int:
        if not self.chunks and not self.eof:
            got = asyncio.run_coroutine_threadsafe(self._gather(), self.loop).result()
            self.chunks.extend(map(memoryview, got))
            self.eof = sum(map(len, got)) < self.HOP
        n = 0
        want = len(b)
        while n < want and self.chunks:
            view = self.chunks[0]
            k = min(want - n, len(view))
            b[n:n + k] = view[:k]
            n += k
            if k == len(view):
                self.chunks.popleft()
            else:
                self.chunks[0] = view[k:]
        return n


class ResponseWriter(io.RawIOBase):
    """A streaming response written from a worker thread, in chunks of ``size``."""

    def __init__(self, response: Any, loop: asyncio.AbstractEventLoop, size: int = 1 << 20) -> None:
        self.response, self.loop, self.size = response, loop, size
        self.buf = bytearray()
        self.total = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.buf += data
        if len(self.buf) >= self.size:
            self.send()
        return len(data)

    def send(self) -> None:
        """Push what is buffered to the client (not ``flush``: close() must never block)."""
        if self.buf:
            chunk, self.buf = bytes(self.buf), bytearray()
            self.total += len(chunk)
            asyncio.run_coroutine_threadsafe(self.response.write(chunk), self.loop).result()


class SocketWriter:
    """The rest of a response body written by a worker thread straight to the connection's
    socket, not through the event loop (a hop and a copy per MiB): for bodies whose length
    the response already declared (``docker save``'s Content-Length). It writes on a dup of
    the socket's fd (the loop keeps its own registration), so it must only start once the
    transport has nothing buffered (:meth:`usable`, :func:`transport_drained`) and nothing
    else writes to the connection until it is done. The socket stays non-blocking: a full
    socket is waited for with poll(2), giving up on :meth:`cancel`; files go with sendfile(2)."""

    def __init__(self, sock_fd: int) -> None:
        import select

        self.fd = os.dup(sock_fd)
        self.poller = select.poll()
        self.poller.register(self.fd, select.POLLOUT)
        self.cancelled = False
        self.total = 0

    @staticmethod
    def usable(transport: Any) -> bool:
        """A plain socket under the transport (TLS: the bytes on the socket are not the body's)."""
        return (transport is not None and not transport.is_closing()
                and transport.get_extra_info("socket") is not None
                and transport.get_extra_info("ssl_object") is None
                and transport.get_extra_info("sslcontext") is None)

    @classmethod
    def for_transport(cls, transport: Any) -> "SocketWriter":
        return cls(transport.get_extra_info("socket").fileno())

    def write(self, data: Any) -> int:
        view = memoryview(data)
        while view:
            if self.cancelled:
                raise ConnectionResetError("the response was abandoned")
            try:
                n = os.write(self.fd, view)
            except BlockingIOError:
                self._wait()
                continue
            view = view[n:]
            self.total += n
        return len(data)

    def sendfile(self, fd: int, offset: int, count: int) -> None:
        while count > 0:
            if self.cancelled:
                raise ConnectionResetError("the response was abandoned")
            try:
                n = os.sendfile(self.fd, fd, offset, count)
            except BlockingIOError:
                self._wait()
                continue
            if n == 0:
                raise EOFError("a file was cut short while it was sent")
            offset += n
            count -= n
            self.total += n

    def _wait(self) -> None:
        while not self.poller.poll(500):
            if self.cancelled:
                raise ConnectionResetError("the response was abandoned")

    def send(self) -> None:
        """Nothing is buffered (the same call as :class:`ResponseWriter`'s)."""

    def cancel(self) -> None:
        self.cancelled = True

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


async def transport_drained(transport: Any) -> None:
    """Until the transport has written everything it buffered (what goes raw comes after)."""
    delay = 0.0005
    while transport.get_write_buffer_size() and not transport.is_closing():
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.05)
