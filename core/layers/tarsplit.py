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
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

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
    out = bytearray()  # one write: a GzipFile.write per record was a tenth of a 20k-file unpack
    meta, file = struct.Struct("<cQ").pack, struct.Struct("<cIQ").pack
    for kind, value, size in records:
        if kind == "M":
            out += meta(b"M", len(value))
            out += value
        else:
            name = value.encode("utf-8", "surrogateescape")
            out += file(b"F", len(name), size)
            out += name
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(out)


SPLIT_READ = 256 << 10  # compressed bytes of a tar-split read at a time
SMALL_FILE = 256 << 10  # files up to this size are read whole, into the pending chunk


def _read_split(path: Path) -> Iterator[tuple[str, bytes | str, int]]:
    """The records of a tar-split file, parsed from large decompressed blocks (not one
    ``GzipFile.read`` per field: that was a third of a 20k-file export)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        z = zlib.decompressobj(31)  # gzip
        buf, pos, eof = b"", 0, False
        while True:
            if len(buf) - pos < 13 and not eof:  # the longest fixed part: F + <IQ
                buf, pos, eof = _more(fd, z, buf, pos)
                continue
            if pos >= len(buf):
                return
            kind = buf[pos]
            if kind == 0x4D:  # M
                (n,) = struct.unpack_from("<Q", buf, pos + 1)
                start = pos + 9
            elif kind == 0x46:  # F
                k, size = struct.unpack_from("<IQ", buf, pos + 1)
                start = pos + 13
                n = k
            else:
                raise DockyardError(f"corrupt tar-split {path}")
            while len(buf) - start < n and not eof:
                buf, pos, eof = _more(fd, z, buf, pos)
                start = pos + (9 if kind == 0x4D else 13)
            if len(buf) - start < n:
                raise DockyardError(f"corrupt tar-split {path}: cut short")
            if kind == 0x4D:
                yield "M", buf[start:start + n], 0
            else:
                yield "F", buf[start:start + n].decode("utf-8", "surrogateescape"), size
            pos = start + n
    except (zlib.error, struct.error) as exc:
        raise DockyardError(f"corrupt tar-split {path}: {exc}") from None
    finally:
        os.close(fd)


def _more(fd: int, z: Any, buf: bytes, pos: int) -> tuple[bytes, int, bool]:
    """``buf[pos:]`` followed by the next decompressed block; eof True at the file's end."""
    while True:
        data = os.read(fd, SPLIT_READ)
        if not data:
            tail = z.flush()
            if not z.eof:
                raise DockyardError("corrupt tar-split: truncated")
            return buf[pos:] + tail, 0, True
        out = z.decompress(data)
        while z.eof and z.unused_data:  # a second gzip member
            rest = z.unused_data
            z = zlib.decompressobj(31)
            out += z.decompress(rest)
        if out:
            return buf[pos:] + out, 0, False


def export_split(split: Path, root: Path, chunk: int = CHUNK) -> Iterator[bytes]:
    """The original tar of a layer, from its tar-split file and its files under ``root``,
    in chunks of about ``chunk`` bytes: headers and small files are gathered into one
    chunk (a 20k-file layer is a few dozen chunks, not 40k), a large file's content is
    read straight in ``chunk``-sized pieces. Files are opened relative to ``root``'s fd,
    the last component never followed."""
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        out = bytearray()
        for kind, value, size in _read_split(split):
            if kind == "M":
                out += value  # type: ignore[operator]
                if len(out) >= chunk:
                    yield bytes(out)
                    out.clear()
                continue
            if value.startswith("/"):  # type: ignore[union-attr]
                raise DockyardError(f"corrupt tar-split {split}: absolute name {value!r}")
            fd = os.open(value, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=root_fd)
            try:
                left = size
                while left > 0:
                    if not out and left >= chunk:
                        data = os.read(fd, chunk)
                        if data:
                            left -= len(data)
                            yield data
                            continue
                    else:
                        data = os.read(fd, min(left, max(chunk - len(out), SMALL_FILE)))
                        out += data
                        left -= len(data)
                        if len(out) >= chunk:
                            yield bytes(out)
                            out.clear()
                    if not data:
                        raise DockyardError(f"layer file {value} changed since it was unpacked")
            finally:
                os.close(fd)
        if out:
            yield bytes(out)
    finally:
        os.close(root_fd)


def files_intact(dest: Path, records: list) -> bool:
    """Whether every file in ``records`` is still under ``dest`` as a regular file of the
    recorded size (else the stream cannot be given back from them)."""
    root = str(dest)
    for kind, name, size in records:
        if kind == "F":
            try:
                st = os.lstat(f"{root}/{name}")
            except OSError:
                return False
            if not stat.S_ISREG(st.st_mode) or st.st_size != size:
                return False
    return True

