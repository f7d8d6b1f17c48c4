"""Tar-split: the original bytes of a layer tar, given back without keeping a second copy.

While a layer is unpacked, :class:`Recorder` keeps every byte of the stream except the
content of regular files (those are on disk); :func:`export_split` puts the stream back
together from that record and the unpacked files (Docker's tar-split idea).
"""

from __future__ import annotations

import gzip
import os
import stat
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from ..errors import DockyardError, InvalidArgument
from .tarfmt import CHUNK, TRAILING_LIMIT


class Recorder:
    """A file-like wrapper over the tar stream that keeps every byte it passes on except
    the content of regular files: with the files on disk, that reassembles the exact
    original stream (Docker's tar-split idea) without keeping a second copy of the data."""

    def __init__(self, src: BinaryIO) -> None:
        self.src, self.pos = src, 0
        # bytes kept but not yet recorded: self.pending[self.off:], starting at stream offset
        # self.pending_start (an index, so cutting a small header never copies the buffer)
        self.pending, self.off, self.pending_start = b"", 0, 0
        self.skip_to = 0
        self.records: list[tuple[str, bytes | str, int]] = []  # ("M", bytes, 0) / ("F", name, size)

    def read(self, n: int = -1) -> bytes:
        data = self.src.read(n)
        start = self.pos
        self.pos += len(data)
        kept = data
        if self.skip_to > start:
            drop = min(len(data), self.skip_to - start)
            kept, start = data[drop:], start + drop
        if kept:
            if self.off >= len(self.pending):
                self.pending, self.off, self.pending_start = kept, 0, start
            else:
                self.pending = self.pending[self.off:] + kept
                self.off = 0
        return data

    def _meta(self, data: bytes) -> None:
        if data:
            if self.records and self.records[-1][0] == "M":
                self.records[-1] = ("M", self.records[-1][1] + data, 0)
            else:
                self.records.append(("M", bytes(data), 0))

    def file(self, offset: int, size: int, name: str) -> None:
        """Member data at ``offset`` (already parsed, so its header is in ``pending``)."""
        cut = offset - self.pending_start
        self._meta(self.pending[self.off:self.off + cut])
        self.records.append(("F", name, size))
        available = len(self.pending) - self.off - cut
        taken = min(available, size)
        self.off += cut + taken
        self.pending_start = offset + taken
        self.skip_to = offset + size

    def finish(self, limit: int = TRAILING_LIMIT) -> None:
        """Read what follows the end-of-archive blocks (padding) and keep it."""
        start = self.pos
        while self.read(CHUNK):
            if self.pos - start > limit:
                raise InvalidArgument("invalid layer tar: too much data after the end of the archive")
        self._meta(self.pending[self.off:])
        self.pending, self.off = b"", 0


def write_split(path: Path, records: list) -> None:
    """Save ``records`` (gzip): ``M`` + length + bytes, or ``F`` + name length, size, name."""
    with gzip.open(path, "wb", compresslevel=1) as f:
        for kind, value, size in records:
            if kind == "M":
                f.write(b"M" + struct.pack("<Q", len(value)) + value)
            else:
                name = value.encode("utf-8", "surrogateescape")
                f.write(b"F" + struct.pack("<IQ", len(name), size) + name)


def _read_split(path: Path) -> Iterator[tuple[str, bytes | str, int]]:
    with gzip.open(path, "rb") as f:
        while kind := f.read(1):
            if kind == b"M":
                (n,) = struct.unpack("<Q", f.read(8))
                yield "M", f.read(n), 0
            else:
                n, size = struct.unpack("<IQ", f.read(12))
                yield "F", f.read(n).decode("utf-8", "surrogateescape"), size


def export_split(split: Path, root: Path) -> Iterator[bytes]:
    """The original tar of a layer, from its tar-split file and its files under ``root``."""
    for kind, value, size in _read_split(split):
        if kind == "M":
            yield value
            continue
        fd = os.open(root / value, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            left = size
            while left > 0:
                chunk = os.read(fd, min(CHUNK, left))
                if not chunk:
                    raise DockyardError(f"layer file {value} changed since it was unpacked")
                left -= len(chunk)
                yield chunk
        finally:
            os.close(fd)


def files_intact(dest: Path, records: list) -> bool:
    """Whether every file in ``records`` is still under ``dest`` as a regular file of the
    recorded size (else the stream cannot be given back from them)."""
    for kind, name, size in records:
        if kind == "F":
            try:
                st = os.lstat(dest / name)
            except OSError:
                return False
            if not stat.S_ISREG(st.st_mode) or st.st_size != size:
                return False
    return True

