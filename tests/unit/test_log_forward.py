"""The daemon's forwarding of a container's output to a log driver (Docker's copier rules) and
journald's native-protocol datagrams (exact bytes, the memfd fallback for a big entry)."""

import array
import contextlib
import os
import socket
import struct

import pytest

from dockyard.builtin import journald
from dockyard.containers.logforward import Forwarder, read_cursor
from dockyard.drivers.logging import LogDrivers, LogInfo, LogMessage
from dockyard.runtime.logfile import LogRecord


class Sink:
    def __init__(self):
        self.got = []

    def log(self, msg):
        self.got.append((msg.stream, msg.line, msg.partial))

    def close(self):
        pass


def info(tmp_path, **kw):
    return LogInfo(container_id="c" * 64, name="web", image_name="busybox", image_id="sha256:" + "1" * 64,
                   config=kw.pop("config", {}), directory=tmp_path, **kw)


def fwd(tmp_path):
    return Forwarder(LogDrivers().get("journald"), info(tmp_path), None, Sink())


def test_lines_streams_and_16k_partials(tmp_path):
    f = fwd(tmp_path)
    f.feed(LogRecord(1, 10, b"a\nb"))
    f.feed(LogRecord(2, 11, b"err\n"))
    f.feed(LogRecord(1, 12, b"c\n" + b"x" * 20000 + b"\n" + b"tail"))
    f.flush()
    assert f.sink.got == [("stdout", b"a", False), ("stderr", b"err", False), ("stdout", b"bc", False),
                          ("stdout", b"x" * 16384, True), ("stdout", b"x" * (20000 - 16384), False),
                          ("stdout", b"tail", True)]


def test_resume_from_the_cursor_sends_nothing_twice_and_loses_nothing(tmp_path):
    recs = [LogRecord(1, 10, b"one\ntw"), LogRecord(2, 11, b"e1\n"), LogRecord(1, 12, b"o\nthr"),
            LogRecord(1, 13, b"ee\nfour\n")]
    f = fwd(tmp_path)
    for r in recs[:3]:
        f.feed(r)
    f.save()  # the daemon dies here: "thr" was not sent yet
    assert read_cursor(tmp_path)["pos"]
    g = fwd(tmp_path)
    for r in recs:  # the buffer is read again from the cursor's oldest record
        g.feed(r)
    g.flush()
    lines = [x[1] for x in f.sink.got + g.sink.got]
    assert lines == [b"one", b"e1", b"two", b"three", b"four"]


def test_what_rotated_out_of_the_buffer_is_reported(tmp_path, caplog):
    class Buffer:
        def __init__(self, recs):
            self.recs = recs

        def records(self):
            return iter(self.recs)

    f = fwd(tmp_path)
    f.feed(LogRecord(1, 10, b"one\n"))
    f.save()
    g = Forwarder(LogDrivers().get("journald"), info(tmp_path),
                  Buffer([LogRecord(1, 10, b"one\n"), LogRecord(1, 20, b"x\n")]), Sink())
    assert not g.check_lost()  # the cursor's record is still there: nothing lost
    g.buffer = Buffer([LogRecord(1, 30, b"late\n")])
    with caplog.at_level("WARNING", logger="dockyard.logging"):
        assert g.check_lost()
    assert "may be lost" in caplog.text and ("c" * 12) in caplog.text


def test_journal_entry_bytes():
    msg = LogMessage("stderr", b"hello", 1_700_000_000_123_000_000, partial=True)
    data = journald.entry(msg, {"CONTAINER_ID": "abc", "LABEL_X": "two\nlines"})
    assert data == (b"PRIORITY=3\nMESSAGE=hello\nCONTAINER_ID=abc\nLABEL_X\n" + struct.pack("<Q", 9) + b"two\nlines\n"
                    b"CONTAINER_PARTIAL_MESSAGE=true\nSYSLOG_TIMESTAMP=2023-11-14T22:13:20.123Z\n")


def test_extra_attributes_as_docker():
    opts = {"labels": "com.example.team,missing", "env": "STAGE", "env-regex": "^X_"}
    got = journald.extra_attributes(opts, {"com.example.team": "ops", "other": "no"}, ["STAGE=prod", "X_A=1", "Y=2"])
    assert got == {"COM_EXAMPLE_TEAM": "ops", "STAGE": "prod", "X_A": "1"}
    assert journald.sanitize_key("_a-b.c9") == "A_B_C9"


def test_big_entry_goes_through_a_sealed_memfd(tmp_path):
    path = str(tmp_path / "journal.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as srv:
        srv.bind(path)
        sink = journald.JournalSink(path, {"CONTAINER_ID": "abc"})
        try:
            sink.log(LogMessage("stdout", b"small", 1))
            big = b"y" * (4 << 20)  # over any socket buffer: EMSGSIZE
            sink.log(LogMessage("stdout", big, 1))
        finally:
            sink.close()
        srv.settimeout(30)
        assert srv.recv(1 << 16).startswith(b"PRIORITY=6\nMESSAGE=small\n")
        fds = array.array("i")
        data, anc, _, _ = srv.recvmsg(1, socket.CMSG_SPACE(fds.itemsize))
        assert data == b""
        (level, kind, raw), = anc
        assert (level, kind) == (socket.SOL_SOCKET, socket.SCM_RIGHTS)
        fds.frombytes(raw[:fds.itemsize])
        fd = fds[0]
        try:
            import fcntl

            assert fcntl.fcntl(fd, 1034) & 0xF == 0xF  # F_GET_SEALS: seal, shrink, grow, write
            os.lseek(fd, 0, os.SEEK_SET)
            content = b""
            while chunk := os.read(fd, 1 << 20):
                content += chunk
        finally:
            os.close(fd)
        assert content.startswith(b"PRIORITY=6\nMESSAGE=" + big + b"\nCONTAINER_ID=abc\n")


def test_no_receiver_is_an_error_naming_journald(tmp_path):
    from dockyard.errors import DockyardError

    with pytest.raises(DockyardError, match="journald"):
        journald.JournalSink(str(tmp_path / "nobody"), {})


class RotatingBuffer:
    """A buffer that rotates while it is followed: ``states[i]`` is what records() holds (the
    buffer's files) once the follower has taken ``i`` records; follow() yields ``seen``."""

    def __init__(self, seen, states):
        self.seen, self.states, self.taken = seen, states, 0

    def records(self):
        return iter(self.states[min(self.taken, len(self.states) - 1)])

    async def follow(self, since=0):
        for r in self.seen:
            yield r
            self.taken += 1


def run_forwarder(tmp_path, buf):
    import asyncio

    f = Forwarder(LogDrivers().get("journald"), info(tmp_path), buf, Sink())
    asyncio.run(f.run())
    return f


def test_output_that_rotated_out_while_forwarding_is_said_and_counted(tmp_path, caplog):
    a1, a2 = LogRecord(1, 10_000, b"a1\n"), LogRecord(1, 20_000, b"a2\n")
    b1, c1, d1 = LogRecord(1, 30_000, b"b1\n"), LogRecord(1, 40_000, b"c1\n"), LogRecord(1, 50_000, b"d1\n")
    # the forwarder is slow: once it took a1, file A (a1, a2) rotated out; once it took a2, B too:
    # it goes on with c1 (b1 was never sent)
    buf = RotatingBuffer([a1, a2, c1, d1], [[a1, a2, b1, c1], [b1, c1], [c1, d1]])
    with caplog.at_level("WARNING", logger="dockyard.logging"):
        f = run_forwarder(tmp_path, buf)
    assert [x[1] for x in f.sink.got] == [b"a1", b"a2", b"c1", b"d1"]
    assert "was not sent" in caplog.text and ("c" * 12) in caplog.text and "rotated out" in caplog.text
    assert "1 gap(s)" in caplog.text
    assert f.gaps == 1 and f.gap_bytes > 0
    assert read_cursor(tmp_path)["gaps"] == 1


def test_rotation_without_loss_is_not_reported(tmp_path, caplog):
    a1, a2 = LogRecord(1, 10_000, b"a1\n"), LogRecord(1, 20_000, b"a2\n")
    b1, c1 = LogRecord(1, 30_000, b"b1\n"), LogRecord(1, 40_000, b"c1\n")
    # A rotated out while being sent, but B (what came next) was still there and was sent
    buf = RotatingBuffer([a1, a2, b1, c1], [[a1, a2, b1], [b1, c1]])
    with caplog.at_level("WARNING", logger="dockyard.logging"):
        f = run_forwarder(tmp_path, buf)
    assert [x[1] for x in f.sink.got] == [b"a1", b"a2", b"b1", b"c1"]
    assert "was not sent" not in caplog.text and f.gaps == 0


def test_a_follower_behind_reads_the_rotated_files_in_order(tmp_path):
    """Two rotations while the follower is still in the first file: the file between (now .1)
    is read next, not skipped for the newest one."""
    import asyncio

    from dockyard.runtime.logfile import LogReader, LogWriter

    path, exit_path = tmp_path / "container.log", tmp_path / "exit"
    w = LogWriter(path, max_size=100, max_files=3)
    w.write(1, b"r1" * 25, 1)

    async def main():
        got = []
        async with contextlib.aclosing(LogReader(path, exit_path).follow()) as records:
            async for r in records:
                got.append(r.timestamp_ns)
                if r.timestamp_ns == 1:  # the follower is at A: A -> .1 -> .2, B -> .1, C
                    w.write(1, b"r2" * 25, 2)
                    w.write(1, b"r3" * 25, 3)
                    exit_path.write_text("0")
        return got

    try:
        assert asyncio.run(main()) == [1, 2, 3]
    finally:
        w.close()
