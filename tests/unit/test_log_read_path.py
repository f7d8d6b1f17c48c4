"""The read path of ``GET /containers/{id}/logs``: :func:`frame_lines` (split_lines + framing in
large buffers, a long line in bounded pieces) and the block readers of both formats (a record
or line across blocks, a corrupt length, an over-long json line) with bounded memory."""

from __future__ import annotations

import json
import struct
import tracemalloc

from dockyard.runtime import logfile
from dockyard.runtime.logfile import HEADER, JsonLogReader, LogReader, LogRecord, LogWriter, frame_lines, split_lines


def demux(data: bytes) -> list[tuple[int, bytes]]:
    out, pos = [], 0
    while pos < len(data):
        stream, n = struct.unpack_from(">BxxxI", data, pos)
        out.append((stream, data[pos + 8:pos + 8 + n]))
        pos += 8 + n
    assert pos == len(data)
    return out


def prefix(ts: int) -> bytes:
    return b"<%d> " % ts


def reference(records: list[LogRecord], streams: set[int], ts: bool) -> list[tuple[int, bytes]]:
    """One frame per line, as the handler sent them before frame_lines."""
    return [(r.stream, (prefix(r.timestamp_ns) if ts else b"") + r.data)
            for r in split_lines(records) if r.stream in streams]


def test_frames_are_split_lines_one_frame_a_line():
    records = [LogRecord(1, 1, b"a\nb"), LogRecord(2, 2, b"err"), LogRecord(1, 3, b"c\nd\n"),
               LogRecord(1, 4, b""), LogRecord(2, 5, b"\nx"), LogRecord(1, 6, b"tail")]
    for streams in ({1}, {2}, {1, 2}):
        for ts in (False, True):
            for batch in (1, 7, 1 << 20):
                got = b"".join(frame_lines(records, streams, prefix=prefix if ts else None, batch=batch))
                assert demux(got) == reference(records, streams, ts)
                raw = b"".join(frame_lines(records, streams, tty=True, prefix=prefix if ts else None, batch=batch))
                assert raw == b"".join(d for _, d in reference(records, streams, ts))


def test_a_line_longer_than_a_piece_goes_out_in_bounded_frames(monkeypatch):
    monkeypatch.setattr(logfile, "PIECE", 1000)
    chunk = b"z" * 300
    records = [LogRecord(1, 10 + i, chunk) for i in range(20)]
    records += [LogRecord(2, 99, b"e\n"), LogRecord(1, 100, b"end\nq")]
    got = demux(b"".join(frame_lines(records, {1, 2}, prefix=prefix)))
    out = [d for s, d in got if s == 1]
    # the bytes of each stream are split_lines' to the byte; the timestamp once, at the line's start
    assert b"".join(out) == b"<10> " + chunk * 20 + b"end\n<100> q"
    assert max(len(d) for d in out) <= 1000 + len(chunk) + len(b"<10> ")
    assert len(out) > 5
    assert [d for s, d in got if s == 2] == [b"<99> e\n"]
    # one stream: the frames carry nothing else (no timestamp inside the line)
    plain = [d for _, d in demux(b"".join(frame_lines(records, {1})))]
    assert b"".join(plain) == chunk * 20 + b"end\nq"


def test_binary_reader_records_across_blocks_and_a_record_bigger_than_a_block(tmp_path, monkeypatch):
    monkeypatch.setattr(logfile, "BLOCK", 64)
    w = LogWriter(tmp_path / "log")
    sizes = [1, 50, 47, 48, 63, 64, 65, 200, 3, 1000]
    for i, n in enumerate(sizes):
        w.write(1 + i % 2, bytes([65 + i]) * n, i + 1)
    w.close()
    got = list(LogReader(tmp_path / "log").records())
    assert [(r.stream, r.timestamp_ns, r.data) for r in got] == \
        [(1 + i % 2, i + 1, bytes([65 + i]) * n) for i, n in enumerate(sizes)]
    # the offsets a follower resumes from: after each record
    offsets = [off for _, off in logfile._scan(open(tmp_path / "log", "rb"), 0)]
    assert offsets[-1] == (tmp_path / "log").stat().st_size == sum(16 + n for n in sizes)


def test_binary_reader_corrupt_length_reads_nothing_more(tmp_path):
    path = tmp_path / "log"
    path.write_bytes(HEADER.pack(1, 5, 1) + b"hello" + HEADER.pack(1, 0xFFFFFFF0, 2) + b"x" * 100)
    tracemalloc.start()
    try:
        got = list(LogReader(path).records())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [r.data for r in got] == [b"hello"]
    assert peak < 16 << 20  # the 4 GiB length was not allocated (a truncated record: the writer's, or corrupt)


def line(log: str, stream: str = "stdout", t: str = "2026-12-06T08:00:00.5Z") -> bytes:
    return json.dumps({"log": log, "stream": stream, "time": t}, separators=(",", ":")).encode() + b"\n"


def test_json_reader_lines_across_blocks_odd_lines_and_an_over_long_line(tmp_path, monkeypatch):
    monkeypatch.setattr(logfile, "BLOCK", 32)
    monkeypatch.setattr(logfile, "MAX_JSON_LINE", 300)
    path = tmp_path / "c-json.log"
    parts = [
        line("a\n"), line("\u0000" * 40 + "é\u2028<"), b"not json\n", b"[1,2]\n",
        b'{"log":1,"stream":"stdout","time":"2026-12-06T08:00:00Z"}\n',  # wrong type: skipped
        b'{"log":"no time"}\n',  # no time: skipped, as before
        b'{"log":"attrs\\n","stream":"stderr","attrs":{"k":"v"},"time":"2026-12-06T08:00:01Z"}\n',
        line("x" * 1000), line("after the long one\n"),
        b'{"log":"\\ud800","stream":"stdout","time":"2026-12-06T08:00:02Z"}\n',  # lone surrogate: skipped
        line("b" * 70, "stderr"), b'{"log":"being writ',
    ]
    path.write_bytes(b"".join(parts))
    got = [(r.stream, r.data) for r in JsonLogReader(path).records()]
    assert got == [(1, b"a\n"), (1, ("\u0000" * 40 + "é\u2028<").encode()), (2, b"attrs\n"),
                   (1, b"after the long one\n"), (2, b"b" * 70)]
    offsets = [off for _, off in logfile._scan_json(open(path, "rb"), 0)]
    assert offsets[-1] == len(b"".join(parts[:-1]))  # a follower goes on before the line being written
