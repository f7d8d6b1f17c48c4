"""Exec streams moved by sendfile/splice (core/api/zerocopy.py), over a real socketpair and a
real record log: the framing (8-byte headers without a TTY, raw with one, only the attached
streams), the client's half-close ending stdin, a client that hangs up, and TLS never taking
the raw path."""

from __future__ import annotations

import asyncio
import os
import socket
import struct

import pytest

from dockyard.api import zerocopy
from dockyard.api.hijack import Hijacked
from dockyard.runtime.logfile import LogReader, LogWriter


class _Hijacked(Hijacked):
    def __init__(self) -> None:  # the transport comes with connection_made
        pass

    def connection_made(self, transport) -> None:  # type: ignore[override]
        Hijacked.__init__(self, transport)


async def _server_side(sock: socket.socket) -> Hijacked:
    loop = asyncio.get_running_loop()
    _, proto = await loop.connect_accepted_socket(_Hijacked, sock)
    return proto


def _log(tmp_path, records):
    w = LogWriter(tmp_path / "exec.log")
    for stream, data in records:
        w.write(stream, data)
    w.close()
    (tmp_path / "exit").write_text("0")
    return LogReader(tmp_path / "exec.log", tmp_path / "exit")


def _recv_all(sock: socket.socket) -> bytes:
    out = b""
    while chunk := sock.recv(1 << 16):
        out += chunk
    return out


@pytest.mark.parametrize("tty", [False, True])
def test_output_is_framed_as_docker_frames_it(tmp_path, tty):
    big = os.urandom(300_000)
    reader = _log(tmp_path, [(1, b"out\n"), (2, b"err\n"), (1, big)])

    async def main():
        a, b = socket.socketpair()
        conn = await _server_side(a)
        b.setblocking(True)
        task = asyncio.get_running_loop().run_in_executor(None, _recv_all, b)
        await zerocopy.send_output(conn, reader, tty, {1})
        conn.transport.close()
        return await task

    got = asyncio.run(main())
    if tty:
        assert got == b"out\n" + big
    else:
        assert got == (struct.pack(">B3xI", 1, 4) + b"out\n" + struct.pack(">B3xI", 1, len(big)) + big)


def test_stdin_is_spliced_until_the_client_half_closes(tmp_path):
    fifo = tmp_path / "stdin"
    os.mkfifo(fifo)
    data = os.urandom(3 << 20)

    async def main():
        a, b = socket.socketpair()
        conn = await _server_side(a)
        rfd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        wfd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.set_blocking(rfd, True)
        loop = asyncio.get_running_loop()

        def client():
            b.sendall(data)
            b.shutdown(socket.SHUT_WR)

        def process():
            out = b""
            while chunk := os.read(rfd, 1 << 16):
                out += chunk
            return out

        sent = loop.run_in_executor(None, client)
        read = loop.run_in_executor(None, process)
        try:
            result = await zerocopy.splice_stdin(conn, wfd)
        finally:
            os.close(wfd)  # as the handler does: the process sees EOF
        await sent
        got = await read
        os.close(rfd)
        conn.transport.close()
        b.close()
        return result, got, conn.lost.is_set()

    result, got, lost = asyncio.run(main())
    assert result == "eof" and got == data and not lost


def test_a_client_that_hangs_up_is_gone(tmp_path):
    reader = _log(tmp_path, [(1, os.urandom(8 << 20))])

    async def main():
        a, b = socket.socketpair()
        conn = await _server_side(a)
        b.setblocking(True)

        def client():  # reads a little, then hangs up mid-stream
            b.recv(100)
            b.close()

        hung_up = asyncio.get_running_loop().run_in_executor(None, client)
        with pytest.raises(ConnectionResetError):
            await zerocopy.send_output(conn, reader, False, {1})
        await hung_up
        assert conn.lost.is_set()
        conn.transport.close()

    asyncio.run(main())


def test_tls_and_other_readers_keep_the_ordinary_path(tmp_path):
    class T:
        def __init__(self, **extra):
            self.extra = {"socket": object(), **extra}

        def get_extra_info(self, key, default=None):
            return self.extra.get(key, default)

    class C:
        def __init__(self, transport):
            self.transport = transport

    reader = LogReader(tmp_path / "exec.log")
    assert zerocopy.usable(reader, C(T()))
    assert not zerocopy.usable(reader, C(T(ssl_object=object())))
    assert not zerocopy.usable(reader, C(T(sslcontext=object())))

    class Other(LogReader):
        pass

    assert not zerocopy.usable(Other(tmp_path / "exec.log"), C(T()))


def test_output_waits_until_the_headers_are_read_an_empty_stream_does_not(tmp_path):
    """hijack(wait_read=False): the first byte of output waits for conn.headers_read (the
    client has read the 101: docker-py's buffered reader would swallow output sent with it);
    a stream without output ends without waiting."""
    (tmp_path / "out").mkdir()
    (tmp_path / "empty").mkdir()
    reader = _log(tmp_path / "out", [(1, b"out\n")])
    empty = _log(tmp_path / "empty", [])

    async def main():
        a, b = socket.socketpair()
        conn = await _server_side(a)
        conn.headers_read = asyncio.get_running_loop().create_future()
        sending = asyncio.ensure_future(zerocopy.send_output(conn, reader, False, {1}))
        for _ in range(50):  # the whole log is there: a send that did not wait would be done
            await asyncio.sleep(0)
        b.setblocking(False)
        with pytest.raises(BlockingIOError):
            b.recv(100)
        assert not sending.done()
        conn.headers_read.set_result(None)
        await sending
        b.setblocking(True)
        first = b.recv(100)

        c, d = socket.socketpair()
        conn2 = await _server_side(c)
        conn2.headers_read = asyncio.get_running_loop().create_future()  # never read
        await asyncio.wait_for(zerocopy.send_output(conn2, empty, False, {1}), 30)
        for s in (a, b, c, d):
            s.close()
        return first

    assert asyncio.run(main()) == struct.pack(">B3xI", 1, 4) + b"out\n"


def test_a_start_whose_client_went_away_is_killed_and_cleaned_up():
    """The exec starts while the 101 goes out; when the hijack fails (the client is gone),
    the started process is killed (nobody would send its stdin nor read its output)."""
    from dockyard.api import exec as exec_api
    from dockyard.containers.execs import ExecInstance

    calls = []

    class Runtime:
        async def exec_kill(self, cid, eid, sig):
            calls.append(("kill", cid, eid, sig))

    class Svc:
        runtime = Runtime()

        async def cleanup(self, e):
            calls.append(("cleanup", e.id))

    e = ExecInstance(id="e1", container_id="c1", args=["cat"], env=[], user="", workdir="", tty=False,
                     privileged=False, attach_stdin=True, attach_stdout=True, attach_stderr=True, detach_keys="")

    async def main():
        async def start():
            e.running = True

        await exec_api._cleanup_started(Svc(), e, asyncio.ensure_future(start()))

    asyncio.run(main())
    assert calls == [("kill", "c1", "e1", 9), ("cleanup", "e1")]
