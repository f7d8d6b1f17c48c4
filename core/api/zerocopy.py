"""Exec streams without copying the payload through Python.

Output: the runtime's log file (16-byte record headers, :mod:`dockyard.runtime.logfile`) goes to
the client with ``sendfile(2)``: per record, the 8-byte frame header (it is the record header's
first 8 bytes; no header with a TTY) and then the payload straight from the page cache.
Stdin without a TTY (no detach keys to look for): ``splice(2)`` from the client's socket into the
process's stdin FIFO, so the bytes never become Python objects either.

Both work on a ``dup`` of the hijacked socket (the event loop keeps its own registration of the
original fd) and keep the stream's rules: the client's EOF ends stdin (the FIFO is closed), a
client that hangs up is seen as gone (``conn.lost``), a client that stops reading only stops
this copy. Anything not a plain record log (other readers, rotation) uses the ordinary path.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import struct
from typing import Any

from ..runtime.dirwatch import DirWatcher
from ..runtime.logfile import LogReader
from ..tasks import set_done
from .hijack import Hijacked

_HEADER = struct.Struct(">B3xIq")
_GONE = {errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN, errno.ESHUTDOWN, errno.EBADF}
SPLICE_MAX = 1 << 20


def usable(reader: Any, conn: Hijacked) -> bool:
    """Whether ``reader`` is a plain record log the zero-copy output can follow."""
    transport = conn.transport
    return (type(reader) is LogReader and transport.get_extra_info("socket") is not None
            # TLS: the bytes on the socket are not the stream's
            and transport.get_extra_info("ssl_object") is None and transport.get_extra_info("sslcontext") is None
            and hasattr(os, "sendfile") and hasattr(os, "splice"))


def _sock_fd(conn: Hijacked) -> int:
    return os.dup(conn.transport.get_extra_info("socket").fileno())


async def _ready(fd: int, write: bool) -> None:
    loop = asyncio.get_running_loop()
    fut = loop.create_future()
    add, remove = (loop.add_writer, loop.remove_writer) if write else (loop.add_reader, loop.remove_reader)
    add(fd, set_done, fut)
    try:
        await fut
    finally:
        remove(fd)


async def _drain_transport(conn: Hijacked) -> None:
    """What the transport still buffers goes first (the frames must stay in order)."""
    delay = 0.001
    while conn.transport.get_write_buffer_size() and not conn.lost.is_set():
        await asyncio.sleep(delay)  # a client that does not read costs a wake-up per 50 ms at most
        delay = min(delay * 2, 0.05)


async def _send_all(conn: Hijacked, sock: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(sock, view):]
        except BlockingIOError:
            await _ready(sock, True)


async def _sendfile_all(conn: Hijacked, sock: int, fd: int, offset: int, count: int) -> None:
    while count > 0:
        try:
            n = os.sendfile(sock, fd, offset, count)
        except BlockingIOError:
            await _ready(sock, True)
            continue
        if n == 0:  # the file is shorter than its record says: never from the shim
            raise EOFError("log record cut short")
        offset += n
        count -= n


async def send_output(conn: Hijacked, reader: LogReader, tty: bool, streams: set[int],
                      poll_interval: float = 0.05) -> None:
    """Follow ``reader``'s log from its start until the exit file shows up and everything is
    sent; raises ConnectionResetError (and sets ``conn.lost``) when the client is gone."""
    await _drain_transport(conn)
    sock = _sock_fd(conn)
    fd = -1
    try:
        with DirWatcher(*{reader.path.parent, *([reader.exit_path.parent] if reader.exit_path else [])}) as watch:
            while fd < 0:
                try:
                    fd = os.open(reader.path, os.O_RDONLY | os.O_CLOEXEC)
                except FileNotFoundError:
                    if reader._exited():
                        return
                    await watch.wait(poll_interval)
            offset, exit_seen, ready = 0, False, False
            while True:
                size = os.fstat(fd).st_size
                progressed = False
                while size - offset >= _HEADER.size:
                    hdr = os.pread(fd, _HEADER.size, offset)
                    stream, n, _ = _HEADER.unpack(hdr)
                    if size - offset - _HEADER.size < n:
                        break  # the writer is mid-record
                    if stream in streams and n:
                        if not ready:  # the first output waits until the client has read the headers
                            await conn.peer_ready()
                            ready = True
                        if not tty:
                            await _send_all(conn, sock, hdr[:8])
                        await _sendfile_all(conn, sock, fd, offset + _HEADER.size, n)
                    offset += _HEADER.size + n
                    progressed = True
                if progressed:
                    continue
                if exit_seen:
                    return
                exit_seen = reader._exited()  # one more pass after the exit file shows up
                if not exit_seen:
                    await watch.wait(poll_interval)
    except OSError as exc:
        if exc.errno in _GONE:
            conn.lost.set()
            raise ConnectionResetError("the client went away") from None
        raise
    finally:
        if fd >= 0:
            os.close(fd)
        os.close(sock)


async def splice_stdin(conn: Hijacked, fifo: int) -> str:
    """Move the client's stdin into ``fifo`` (non-blocking) until the client's EOF ("eof") or
    the reader going away ("gone"). What the transport already read is written first."""
    conn.transport.pause_reading()
    while not conn.input.empty():  # bytes that arrived with or after the upgrade
        chunk = conn.input.get_nowait()
        if chunk is None:
            return "eof"
        try:
            await _send_all(conn, fifo, chunk)
        except OSError:  # the reader went away
            return "gone"
    conn.queued = 0
    sock = _sock_fd(conn)
    try:
        while True:
            try:
                n = os.splice(sock, fifo, SPLICE_MAX, flags=os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK)
            except BlockingIOError:
                # the socket has nothing, or the FIFO is full: wait for both to be ready
                await _ready(sock, False)
                await _ready(fifo, True)
                continue
            except OSError as exc:
                if exc.errno in (errno.EPIPE,):  # the reader (the process) is gone
                    return "gone"
                if exc.errno in _GONE:
                    conn.lost.set()
                    return "eof"
                raise
            if n == 0:
                return "eof"  # the client half-closed: the process's stdin ends
    finally:
        os.close(sock)
        with contextlib.suppress(Exception):
            if not conn.transport.is_closing():
                conn.transport.resume_reading()
