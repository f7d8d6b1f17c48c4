"""Container log files: binary records written by the shim (or :class:`LogWriter`).

Record = 16-byte header + payload::

    byte 0      stream (1 stdout, 2 stderr)
    bytes 1-3   zero
    bytes 4-7   payload length, big-endian uint32
    bytes 8-15  timestamp, ns since the epoch, big-endian int64

Bytes 0-7 are exactly Docker's multiplexed-stream frame header, so
``LogRecord.frame()`` is cheap. Payloads are chunks as read (partial lines are fine);
:meth:`LogReader.lines` re-splits them per stream. Rotation: ``log`` -> ``log.1`` -> ...
``log.<max_files-1>`` (oldest); with max_files == 1 the file is truncated instead.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import struct
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Container, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from ..timestamps import parse_rfc3339_ns  # noqa: F401  (re-exported)
from .dirwatch import DirWatcher

HEADER = struct.Struct(">B3xIq")
STDOUT, STDERR = 1, 2


@dataclass(slots=True)
class LogRecord:
    stream: int
    timestamp_ns: int
    data: bytes

    def frame(self) -> bytes:
        """Docker's multiplexed stream frame (``application/vnd.docker.multiplexed-stream``)."""
        return struct.pack(">B3xI", self.stream, len(self.data)) + self.data


BLOCK = 1 << 20  # bytes a reader takes from a log file at a time


def _scan(f, offset: int) -> Iterator[tuple[LogRecord, int]]:
    """Complete records of an open binary file from ``offset``, with the offset after each.
    Read in blocks (a record is one slice of a block, not two reads); a record across the
    end of a block is completed by reading just its rest (blocks are never joined); a record
    whose length runs past the end of the file (the writer is mid-record, or the length is
    corrupt) ends the scan without reading it."""
    f.seek(offset)
    buf, pos = b"", 0
    unpack = HEADER.unpack_from
    while True:
        avail = len(buf) - pos
        if avail < 16:
            more = f.read(16 - avail if avail else BLOCK)  # a header across blocks: just its rest
            if not more:
                return  # the end, or the writer is mid-record
            buf, pos = (buf[pos:] + more if avail else more), 0
            if len(buf) < 16:
                continue
        stream, n, ts = unpack(buf, pos)
        end = pos + 16 + n
        if end <= len(buf):
            offset += 16 + n
            yield LogRecord(stream, ts, buf[pos + 16:end]), offset
            pos = end
            continue
        if n > BLOCK and not _gzipped(f):  # a length to check before reading it
            with contextlib.suppress(OSError, AttributeError, io.UnsupportedOperation):
                if os.fstat(f.fileno()).st_size < f.tell() + end - len(buf):
                    return
        data = buf[pos + 16:] + f.read(end - len(buf))
        if len(data) < n:
            return  # the writer is mid-record
        offset += 16 + n
        yield LogRecord(stream, ts, data), offset
        buf, pos = b"", 0


def split_lines(records: Iterable[LogRecord]) -> Iterator[LogRecord]:
    """One record per line (newline kept); partial lines are joined per stream; a trailing
    partial line is yielded at the end. The timestamp is that of the line's first chunk."""
    # a partial line's chunks are collected and joined once its newline comes: joining at each
    # chunk copied the whole line every time (106 MB without a newline took ~20 s to read)
    carry: dict[int, tuple[list[bytes], int]] = {}
    for r in records:
        if not r.data:  # (moves the stream's partial line last, as a join would)
            if r.stream in carry:
                carry[r.stream] = carry.pop(r.stream)
            continue
        if b"\n" not in r.data:
            parts, ts = carry.pop(r.stream, ([], r.timestamp_ns))
            parts.append(r.data)
            carry[r.stream] = (parts, ts)
            continue
        prev = carry.pop(r.stream, None)
        data, ts = (b"".join(prev[0]) + r.data, prev[1]) if prev else (r.data, r.timestamp_ns)
        start = 0
        while (nl := data.find(b"\n", start)) >= 0:
            yield LogRecord(r.stream, ts, data[start:nl + 1])
            start, ts = nl + 1, r.timestamp_ns
        if start < len(data):
            carry[r.stream] = ([data[start:]], ts)
    for stream, (parts, ts) in carry.items():
        yield LogRecord(stream, ts, b"".join(parts))


_FRAME = struct.Struct(">B3xI")
PIECE = 1 << 20  # a line longer than this goes out in pieces of about this size


def frame_lines(records: Iterable[LogRecord], streams: Container[int], tty: bool = False,
                prefix: Callable[[int], bytes] | None = None, batch: int = 1 << 20) -> Iterator[bytes]:
    """What ``GET /logs`` sends for ``records``: :func:`split_lines` of the records of
    ``streams``, each line one frame (raw bytes if ``tty``) with ``prefix(line timestamp)`` before
    it (``timestamps=1``), in buffers of about ``batch`` bytes (one write each).

    The bytes are split_lines' to the byte; only frame boundaries differ for a line longer than
    PIECE: it goes out in frames of about PIECE (the prefix before the first only) as its chunks
    come instead of one frame at its end, so memory stays bounded (106 MB without a newline
    was one 106 MB frame copied four times; Docker sends 16 KiB frames for such lines)."""
    out: list[bytes] = []
    size = 0
    pack = _FRAME.pack
    # stream -> [chunks, timestamp of the first, their length, prefix already sent]
    carry: dict[int, list] = {}

    def emit(s: int, parts: list[bytes], ts: int, n: int, started: bool) -> int:
        """A carried line's chunks as one frame (the prefix if the line's first); its size."""
        if prefix is not None and not started:
            parts.insert(0, prefix(ts))
            n += len(parts[0])
        if not tty:
            out.append(pack(s, n))
        out.extend(parts)
        return n

    for r in records:
        s = r.stream
        if s not in streams:
            continue
        data = r.data
        nl = data.find(b"\n")
        if nl >= 0 and nl == len(data) - 1 and s not in carry:  # one whole line (json-file's records): as is
            if prefix is not None:
                data = prefix(r.timestamp_ns) + data
            if not tty:
                out.append(pack(s, len(data)))
            out.append(data)
            size += len(data)
            if size >= batch:
                yield b"".join(out)
                out.clear()
                size = 0
            continue
        c = carry.pop(s, None)
        if nl < 0:
            if c is None:
                if not data:
                    continue
                c = [[data], r.timestamp_ns, len(data), False]
            elif data:
                c[0].append(data)
                c[2] += len(data)
            carry[s] = c  # last, as split_lines' carry (the order of partial lines at the end)
            if c[2] >= PIECE:  # a long line: what there is of it goes out now
                size += emit(s, *c)
                c[0], c[2], c[3] = [], 0, True
            if size >= batch:
                yield b"".join(out)
                out.clear()
                size = 0
            continue
        ts, start = r.timestamp_ns, 0
        if c is not None:  # the newline ends the carried line
            parts, ts, n, started = c
            parts.append(data[:nl + 1])
            size += emit(s, parts, ts, n + nl + 1, started)
            start, ts = nl + 1, r.timestamp_ns
            nl = data.find(b"\n", start)
        while nl >= 0:
            line = data[start:nl + 1]
            if prefix is not None:
                line = prefix(ts) + line
            if not tty:
                out.append(pack(s, len(line)))
            out.append(line)
            size += len(line)
            start = nl + 1
            nl = data.find(b"\n", start)
        if start < len(data):
            rest = data[start:]
            carry[s] = [[rest], ts, len(rest), False]
        if size >= batch:
            yield b"".join(out)
            out.clear()
            size = 0
    for s, (parts, ts, n, started) in carry.items():
        if n:
            emit(s, parts, ts, n, started)
    if out:
        yield b"".join(out)


def _open(p: Path):
    """A log file for reading: rotated ``.gz`` files (json-file's compress) decompressed."""
    if p.name.endswith(".gz"):
        import gzip  # here, not at idle: only rotated compressed logs need it

        return gzip.open(p, "rb")
    return open(p, "rb", buffering=1 << 20)


class LogReader:
    """Reads a container's log (current file ``path`` plus rotated ``path.N``)."""

    def __init__(self, path: Path, exit_path: Path | None = None) -> None:
        self.path = Path(path)
        self.exit_path = Path(exit_path) if exit_path else None

    _scan = staticmethod(_scan)

    def files(self) -> list[Path]:
        """Existing log files, oldest first."""
        rotated = []
        for p in self.path.parent.glob(self.path.name + ".*"):
            suffix = p.name[len(self.path.name) + 1:]
            if suffix.endswith(".gz"):  # json-file's compress=true (a plain file beside it wins)
                suffix = suffix[:-3]
                if suffix.isdigit() and p.with_name(p.name[:-3]).exists():
                    continue
            if suffix.isdigit():
                rotated.append((int(suffix), p))
        out = [p for _, p in sorted(rotated, reverse=True)]
        if self.path.exists():
            out.append(self.path)
        return out

    def records(self, since_ns: int = 0, until_ns: int = 0) -> Iterator[LogRecord]:
        """All records oldest -> newest with ``since_ns <= ts`` (and ``ts <= until_ns`` if set)."""
        for p in self.files():
            try:
                f = _open(p)
            except FileNotFoundError:
                continue
            with f:
                if not since_ns and not until_ns:
                    for r, _ in self._scan(f, 0):
                        yield r
                    continue
                for r, _ in self._scan(f, 0):
                    if r.timestamp_ns >= since_ns and (not until_ns or r.timestamp_ns <= until_ns):
                        yield r

    def lines(self, since_ns: int = 0, until_ns: int = 0) -> Iterator[LogRecord]:
        return split_lines(self.records(since_ns, until_ns))

    def tail(self, n: int, since_ns: int = 0, until_ns: int = 0) -> list[LogRecord]:
        """The last ``n`` lines (all streams together, in order)."""
        if n <= 0:
            return []
        return list(deque(self.lines(since_ns, until_ns), maxlen=n))

    async def follow(self, since_ns: int = 0, until_ns: int = 0, tail: int | None = None,
                     poll_interval: float = 0.05) -> AsyncIterator[LogRecord]:
        """History (all, or the last ``tail`` lines) then new records as they are written.
        Stops once the exit file exists and everything is read, or after ``until_ns``.
        Between records it waits for a change in the log's (or exit file's) directory."""
        with DirWatcher(*{self.path.parent, *([self.exit_path.parent] if self.exit_path else [])}) as watch:
            async with contextlib.aclosing(self._follow(watch, since_ns, until_ns, tail, poll_interval)) as records:
                async for r in records:
                    yield r

    async def _follow(self, watch: DirWatcher, since_ns: int, until_ns: int, tail: int | None,
                      poll_interval: float) -> AsyncIterator[LogRecord]:
        cur = None
        exit_seen = False
        while cur is None:
            try:
                cur = open(self.path, "rb", buffering=1 << 20)
            except FileNotFoundError:
                if self._exited():
                    return
                await watch.wait(poll_interval)
        try:
            ino = os.fstat(cur.fileno()).st_ino
            history: list[LogRecord] = []
            offset = 0
            last_ts = 0  # of the last record read from cur
            if tail is None:  # (RED) the history streamed, not held whole: a follower costs no log-sized list
                for p in self.files()[:-1]:
                    with _open(p) as f:
                        for r, _ in self._scan(f, 0):
                            if r.timestamp_ns >= since_ns and (not until_ns or r.timestamp_ns <= until_ns):
                                yield r
                for r, offset in self._scan(cur, 0):  # noqa: B007  (the last offset: where following starts)
                    last_ts = r.timestamp_ns
                    if r.timestamp_ns >= since_ns and (not until_ns or r.timestamp_ns <= until_ns):
                        yield r
            for p in self.files()[:-1] if tail is not None else ():
                with _open(p) as f:
                    history.extend(r for r, _ in self._scan(f, 0))
            for r, offset in self._scan(cur, 0) if tail is not None else ():  # noqa: B007
                history.append(r)
                last_ts = r.timestamp_ns
            history = [r for r in history
                       if r.timestamp_ns >= since_ns and (not until_ns or r.timestamp_ns <= until_ns)]
            if tail is not None and tail >= 0:
                history = list(deque(split_lines(history), maxlen=tail)) if tail else []
            for r in history:
                yield r
            del history
            while True:
                got = False
                for r, offset in self._scan(cur, offset):  # noqa: B007, B020  (the last offset: where to go on)
                    got = True
                    last_ts = r.timestamp_ns
                    if until_ns and r.timestamp_ns > until_ns:
                        return
                    if r.timestamp_ns >= since_ns:
                        yield r
                if got:
                    continue
                if until_ns and time.time_ns() > until_ns:
                    return
                if os.fstat(cur.fileno()).st_size < offset:  # truncated (max_files == 1)
                    offset = 0
                    continue
                try:
                    new_ino = os.stat(self.path).st_ino
                except FileNotFoundError:
                    new_ino = ino
                if new_ino != ino:  # rotated: drain what was written before the rename, switch
                    for r, offset in self._scan(cur, offset):  # noqa: B007, B020
                        last_ts = r.timestamp_ns
                        if r.timestamp_ns >= since_ns and (not until_ns or r.timestamp_ns <= until_ns):
                            yield r
                    # to the file written next (rotated again meanwhile, it is a ``.N`` now), not
                    # the newest: a reader behind the writer skips nothing that is still there
                    nxt = self._successor(ino, last_ts) if last_ts else None
                    if nxt is None:
                        try:
                            nxt = open(self.path, "rb", buffering=1 << 20)
                        except FileNotFoundError:  # the writer is between its rename and create
                            await watch.wait(poll_interval)
                            continue
                    cur.close()
                    cur = nxt
                    ino, offset = os.fstat(cur.fileno()).st_ino, 0
                    continue
                if exit_seen:
                    return
                exit_seen = self._exited()  # one more drain pass after the exit file shows up
                if not exit_seen:
                    await watch.wait(poll_interval)
        finally:
            cur.close()

    def _successor(self, ino: int, last_ts: int):
        """The oldest log file (not a compressed one) whose first record comes after ``last_ts``,
        open; None if there is none (yet)."""
        for p in self.files():
            if p.name.endswith(".gz"):
                continue
            try:
                f = open(p, "rb", buffering=1 << 20)
            except FileNotFoundError:
                continue
            first = None
            if os.fstat(f.fileno()).st_ino != ino:
                first = next((r for r, _ in self._scan(f, 0)), None)
            if first is not None and first.timestamp_ns > last_ts:
                return f
            f.close()
        return None

    def _exited(self) -> bool:
        """The exit file exists, or the whole state dir is gone (the container was removed)."""
        return self.exit_path is not None and (self.exit_path.exists() or not self.exit_path.parent.exists())


class LogWriter:
    """Python writer of the same format (used by the fake runtime and tests)."""

    def __init__(self, path: Path, max_size: int = 0, max_files: int = 1) -> None:
        self.path, self.max_size, self.max_files = Path(path), max_size, max_files
        self.f = open(self.path, "ab", buffering=0)
        self.size = self.f.tell()

    def write(self, stream: int, data: bytes, ts_ns: int | None = None) -> None:
        if not data:
            return
        if self.max_size > 0 and self.size > 0 and self.size + 16 + len(data) > self.max_size:
            self._rotate()
        rec = HEADER.pack(stream, len(data), time.time_ns() if ts_ns is None else ts_ns) + data
        self.f.write(rec)
        self.size += len(rec)

    def _rotate(self) -> None:
        if self.max_files <= 1:
            self.f.truncate(0)
            self.size = 0
            return
        for i in range(self.max_files - 1, 0, -1):
            src = self.path if i == 1 else self.path.with_name(f"{self.path.name}.{i - 1}")
            try:
                os.rename(src, self.path.with_name(f"{self.path.name}.{i}"))
            except FileNotFoundError:
                pass
        self.f.close()
        self.f = open(self.path, "ab", buffering=0)
        self.size = 0

    def close(self) -> None:
        self.f.close()


# -- json-file: Docker's on-disk format, written by the shim (see shim.c jlog_*) ----------------

_STREAMS = {"stdout": STDOUT, "stderr": STDERR}
MAX_JSON_LINE = 8 << 20  # longer lines are skipped unread (a writer's are ~6 x 16 KiB at most)


def _gzipped(f) -> bool:
    """``f`` is a GzipFile (made by :func:`_open`, the one importer of gzip here)."""
    gz = sys.modules.get("gzip")
    return gz is not None and isinstance(f, gz.GzipFile)


@functools.cache
def _line_decoder() -> Callable[[bytes], Any]:
    """msgspec's typed decoder of a json-file line: msgspec (~1 MB) is imported by the first
    json-file read, not by an idle daemon."""
    import msgspec

    class _JsonLine(msgspec.Struct):
        log: str = ""
        stream: str = "stdout"
        time: str = ""

    return msgspec.json.Decoder(_JsonLine).decode


def _json_record(line) -> LogRecord | None:
    """The record of one json-file line, None if it is not a log line (Docker's reader skips
    them too). orjson first (~3x msgspec on escape-heavy lines: 106 MB of NUL bytes are 636 MB
    of \\u0000); msgspec's typed decoder, as before, for what orjson refuses or finds odd."""
    try:
        obj = orjson.loads(line)
        if type(obj) is dict:
            log, stream, t = obj.get("log", ""), obj.get("stream", "stdout"), obj.get("time", "")
            if type(log) is str and type(stream) is str and type(t) is str:
                return LogRecord(_STREAMS.get(stream, STDOUT), parse_rfc3339_ns(t), log.encode())
    except (orjson.JSONDecodeError, ValueError, UnicodeError):
        pass
    import msgspec

    try:
        o = _line_decoder()(line)
        return LogRecord(_STREAMS.get(o.stream, STDOUT), parse_rfc3339_ns(o.time), o.log.encode())
    except (msgspec.ValidationError, msgspec.DecodeError, ValueError, UnicodeError):
        return None


def _scan_json(f, offset: int) -> Iterator[tuple[LogRecord, int]]:
    """Complete JSON lines of an open binary file from ``offset``: one record each (a partial
    record's data has no trailing newline; :func:`split_lines` joins them). Read in blocks
    into one buffer, each line decoded from a view of it (a line across two blocks is
    copied out); a line longer than MAX_JSON_LINE is skipped without keeping it."""
    import msgspec

    loads, decode, streams, parse_time = orjson.loads, _line_decoder(), _STREAMS, parse_rfc3339_ns
    f.seek(offset)
    size = BLOCK
    if not _gzipped(f):  # a follower's poll: a buffer for what is there, not 1 MiB
        with contextlib.suppress(OSError, AttributeError, io.UnsupportedOperation):
            size = min(BLOCK, max(os.fstat(f.fileno()).st_size - offset, 1 << 16))
    buf = bytearray(size)
    view = memoryview(buf)
    head: list[bytes] = []  # the start of a line begun in an earlier block
    head_len = 0
    skipping = False  # inside an over-long line
    while True:
        n = f.readinto(view)
        if not n:
            return  # the end, or the writer is mid-line
        start = 0
        if head or skipping:
            nl = buf.find(b"\n", 0, n)
            if nl < 0:
                if skipping:
                    offset += n
                else:
                    head.append(bytes(view[:n]))
                    head_len += n
                    if head_len > MAX_JSON_LINE:
                        offset += head_len
                        head, head_len, skipping = [], 0, True
                continue
            start = nl + 1
            if skipping:
                offset += start
                skipping = False
            else:
                head.append(bytes(view[:start]))
                rec = _json_record(b"".join(head))
                offset += head_len + start
                head, head_len = [], 0
                if rec is not None:
                    yield rec, offset
        first = buf.find(b"\n", start, n)
        if 0 <= first - start < 2048:  # short lines: split in C, msgspec's typed decoder (the fastest there)
            last = buf.rfind(b"\n", start, n)
            lines = bytes(view[start:last]).split(b"\n")  # bytes: bytearray pieces decode slower
            start = last + 1
            for line in lines:
                offset += len(line) + 1
                try:
                    o = decode(line)
                    rec = LogRecord(streams.get(o.stream, STDOUT), parse_time(o.time), o.log.encode())
                except (msgspec.ValidationError, msgspec.DecodeError, ValueError, UnicodeError):
                    continue
                yield rec, offset
        while (nl := buf.find(b"\n", start, n)) >= 0:  # long lines: decoded from views, by orjson
            line = view[start:nl + 1]
            offset += nl + 1 - start
            start = nl + 1
            try:  # the usual line, inline; anything else the long way (_json_record)
                obj = loads(line)
                log, stream, t = obj["log"], obj["stream"], obj["time"]
                if type(log) is not str or type(stream) is not str or type(t) is not str:
                    raise TypeError
                rec: LogRecord | None = LogRecord(streams.get(stream, STDOUT), parse_time(t), log.encode())
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, UnicodeError):
                rec = _json_record(line)
            if rec is not None:
                yield rec, offset
        if start < n:
            head.append(bytes(view[start:n]))
            head_len = n - start


class JsonLogReader(LogReader):
    """Reads Docker's json-file format (``<id>-json.log`` plus rotated ``.1`` ... files)."""

    _scan = staticmethod(_scan_json)


_GO_ESCAPES = {ord("\\"): "\\\\", ord('"'): '\\"', ord("\n"): "\\n", ord("\r"): "\\r",
               ord("<"): "\\u003c", ord(">"): "\\u003e", ord("&"): "\\u0026"}


def _utf8_len(data: bytes, i: int) -> int:
    """Length of the valid UTF-8 sequence at ``data[i]`` (Go's utf8.DecodeRune rules), 0 if invalid."""
    b, lo, hi = data[i], 0x80, 0xBF
    if 0xC2 <= b <= 0xDF:
        n = 2
    elif 0xE0 <= b <= 0xEF:
        n, lo, hi = 3, 0xA0 if b == 0xE0 else 0x80, 0x9F if b == 0xED else 0xBF
    elif 0xF0 <= b <= 0xF4:
        n, lo, hi = 4, 0x90 if b == 0xF0 else 0x80, 0x8F if b == 0xF4 else 0xBF
    else:
        return 0
    if len(data) - i < n or not lo <= data[i + 1] <= hi:
        return 0
    return n if all(0x80 <= c <= 0xBF for c in data[i + 2:i + n]) else 0


def go_json_string(data: bytes) -> str:
    """The JSON string moby's jsonlog writes for ``data`` (the rules of the shim's jlog_escape,
    as a Python reference): \\" \\\\ \\n \\r, other control bytes and < > & as \\u00XX,
    U+2028/U+2029 escaped, every byte of invalid UTF-8 as \\ufffd."""
    out = ['"']
    i = 0
    while i < len(data):
        b = data[i]
        if b < 0x80:
            out.append(_GO_ESCAPES.get(b) or (f"\\u{b:04x}" if b < 0x20 else chr(b)))
            i += 1
            continue
        n = _utf8_len(data, i)
        if not n:
            out.append("\\ufffd")
            i += 1
            continue
        ch = data[i:i + n].decode()
        out.append(f"\\u{ord(ch):04x}" if ch in "\u2028\u2029" else ch)
        i += n
    out.append('"')
    return "".join(out)
