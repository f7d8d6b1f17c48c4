"""Container output streams: Docker's multiplexed frames (non-TTY) or raw bytes (TTY).

A frame is an 8-byte header -- the stream (0 stdin, 1 stdout, 2 stderr), three zero
bytes, the payload length as a big-endian uint32 -- followed by the payload.
"""

from __future__ import annotations

import struct
import sys
from typing import BinaryIO, Callable, Iterable, Iterator

HEADER = struct.Struct(">BxxxL")
MULTIPLEXED = "application/vnd.docker.multiplexed-stream"


def demux(buf: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    """Split ``buf`` into whole frames ``(stream, payload)`` and the incomplete rest."""
    frames, pos = [], 0
    while len(buf) - pos >= HEADER.size:
        stream, length = HEADER.unpack_from(buf, pos)
        end = pos + HEADER.size + length
        if end > len(buf):
            break
        frames.append((stream, bytes(buf[pos + HEADER.size:end])))
        pos = end
    return frames, bytes(buf[pos:])


def frame(stream: int, payload: bytes) -> bytes:
    return HEADER.pack(stream, len(payload)) + payload


class Demuxer:
    """Incremental :func:`demux`: feed chunks as they arrive, get whole frames back."""

    def __init__(self) -> None:
        self.rest = b""

    def feed(self, chunk: bytes) -> list[tuple[int, bytes]]:
        frames, self.rest = demux(self.rest + chunk)
        return frames


def _std(stream: int) -> BinaryIO:
    return sys.stderr.buffer if stream == 2 else sys.stdout.buffer


def copy_output(chunks: Iterable[bytes], multiplexed: bool,
                out: Callable[[int], BinaryIO] = _std) -> None:
    """Write a container's output to our stdout/stderr as it arrives. Raw (TTY) output all
    goes to stdout."""
    demuxer = Demuxer()
    for chunk in chunks:
        if not multiplexed:
            f = out(1)
            f.write(chunk)
            f.flush()
            continue
        for stream, payload in demuxer.feed(chunk):
            f = out(stream if stream in (1, 2) else 1)
            f.write(payload)
            f.flush()


def socket_chunks(conn: object) -> Iterator[bytes]:
    """Chunks from a hijacked connection (anything with ``recv``) until the daemon closes it."""
    while True:
        chunk = conn.recv(65536)  # type: ignore[attr-defined]
        if not chunk:
            return
        yield chunk
