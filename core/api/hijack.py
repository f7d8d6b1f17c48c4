"""Hijacked connections: after ``101 UPGRADED`` the handler owns the raw socket.

The HTTP protocol closes a connection when the client half-closes it, but the docker CLI
half-closes (``CloseWrite``) as soon as it has no more stdin to send, and still expects output.
So after the 101 we put our own protocol on the transport: the client's EOF only ends the input, and
output keeps flowing until the handler is done.

docker-py reads a hijacked stream from the raw socket, under the buffered reader that parsed
the response headers: output that reached the client in the same read as the headers is
lost (exec_run returned b"" for ~1.5% of execs on a loaded machine). So on a Unix socket the
output waits until the client has read the headers (:func:`headers_read`).

A client that does not ask to upgrade (curl, plain HTTP libraries) gets what dockerd sends:
``200 OK`` and the raw stream, neither chunked nor with a length, ended by closing the
connection (``Connection: close``). A plain StreamResponse would announce ``Transfer-Encoding:
chunked`` for a body of unknown length, and the bytes written to the hijacked transport are no chunks.
"""

from __future__ import annotations

import array
import asyncio
import fcntl
import ipaddress
import socket
import struct
import termios
import time

from ..http import web

from ..versions import _vtuple
from ..tasks import spawn
from .middleware import add_common_headers

RAW_STREAM = "application/vnd.docker.raw-stream"
MULTIPLEXED_STREAM = "application/vnd.docker.multiplexed-stream"


class RawStreamResponse(web.StreamResponse):
    """A response whose body is whatever is written to the transport until it is closed: no
    chunked encoding, no Content-Length (``dockyard.http.websocket``'s WebSocketResponse turns the
    check off the same way)."""

    _length_check = False


class Hijacked(asyncio.Protocol):
    # stdin flow control: stop reading the socket while this much is queued and not yet
    # written to the process, so a fast client cannot fill the daemon's memory
    HIGH_WATER = 4 << 20
    LOW_WATER = 1 << 20

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.input: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.queued = 0
        self._paused = False
        self.lost = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()
        # hijack(wait_read=False): done once the client has read the response headers
        self.headers_read: asyncio.Future[None] | None = None

    # -- asyncio.Protocol -------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        self.input.put_nowait(data)
        self.queued += len(data)
        if self.queued > self.HIGH_WATER and not self._paused and not self.transport.is_closing():
            self._paused = True
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        self.input.put_nowait(None)  # stdin is done; keep the write side open
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.input.put_nowait(None)
        self.lost.set()
        self._writable.set()

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    # -- for handlers ---------------------------------------------------------------------------

    async def peer_ready(self) -> None:
        """Until the client has read the response headers: the first byte of output waits
        for it (see :func:`headers_read`); an end of the stream without output need not."""
        if self.headers_read is not None and not self.headers_read.done():
            await asyncio.shield(self.headers_read)

    async def write(self, data: bytes) -> None:
        await self.peer_ready()
        if self.lost.is_set() or self.transport.is_closing():
            raise ConnectionResetError("the client went away")
        self.transport.write(data)
        await self._writable.wait()

    async def read(self) -> bytes | None:
        """The next chunk the client sent (stdin), or None at its EOF."""
        data = await self.input.get()
        if data is not None:
            self.queued -= len(data)
            if self._paused and self.queued < self.LOW_WATER:
                self._paused = False
                if not self.transport.is_closing():
                    self.transport.resume_reading()
        return data


async def hijack(request: web.Request, content_type: str,
                 wait_read: bool = True) -> tuple[web.StreamResponse, Hijacked]:
    """Answer ``101 UPGRADED`` (or 200 for clients that did not ask to upgrade, the stream then
    delimited by the connection's close) and take over. As dockerd, the multiplexed stream's
    media type is announced from API 1.42 on; older clients are told ``raw-stream``.
    ``wait_read``: return once the client has read the headers; else at once, and the
    connection's writes (and :meth:`Hijacked.peer_ready`) wait for that instead."""
    upgrade = request.headers.get("Upgrade", "").lower() == "tcp"
    version = request.get("api_version")
    if content_type == MULTIPLEXED_STREAM and version and _vtuple(version) < (1, 42):
        content_type = RAW_STREAM
    headers = {"Content-Type": content_type}
    if upgrade:
        headers.update(Connection="Upgrade", Upgrade="tcp")
    response = RawStreamResponse(status=101 if upgrade else 200, reason="UPGRADED" if upgrade else "OK",
                                 headers=headers)
    add_common_headers(response)
    response.force_close()
    await response.prepare(request)
    transport = request.transport
    assert transport is not None
    conn = Hijacked(transport)
    early = request.content.read_nowait(-1) if not request.content.at_eof() else b""
    if early:
        conn.data_received(early)
    transport.set_protocol(conn)
    if wait_read:
        await headers_read(transport)
    else:
        conn.headers_read = spawn(headers_read(transport), "hijacked headers read")
    return response, conn


def _proc_net_addr(family: int, host: str, port: int) -> str:
    """An address as /proc/net/tcp{,6} prints it (32-bit words in host order, hex)."""
    packed = socket.inet_pton(family, host)
    words = struct.unpack(f"<{len(packed) // 4}I", packed)
    return "".join(f"{w:08X}" for w in words) + f":{port:04X}"


def _loopback_peer_unread(sock: socket.socket) -> int | None:
    """Bytes waiting in the receive queue of a TCP peer on this host (loopback), read from
    /proc/net/tcp{,6}: what the client has not read yet. None when unknown."""
    try:
        peer, local = sock.getpeername(), sock.getsockname()
        if not ipaddress.ip_address(peer[0].split("%")[0]).is_loopback:
            return None
        table = "/proc/net/tcp6" if sock.family == socket.AF_INET6 else "/proc/net/tcp"
        want = (_proc_net_addr(sock.family, peer[0], peer[1]), _proc_net_addr(sock.family, local[0], local[1]))
        with open(table) as f:
            for line in f:
                parts = line.split()
                if len(parts) > 4 and (parts[1], parts[2]) == want:
                    return int(parts[4].split(":")[1], 16)
    except (OSError, ValueError):
        return None
    return None


async def headers_read(transport: asyncio.Transport, timeout: float = 10.0) -> None:
    """Wait until the peer has read everything sent so far (the response headers), so the
    output that follows is not swallowed by the buffered reader the client parsed the
    headers with (docker-py then reads the raw socket): on a Unix socket the kernel counts
    the bytes the peer has not read yet (SIOCOUTQ); for a TCP client on this host (loopback)
    its receive queue in /proc/net/tcp says the same. Bounded: a client that does not read
    first is only not protected. Other TCP peers: nothing tells, so it returns at once."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        return
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        if _loopback_peer_unread(sock) is None:
            return
        deadline = time.monotonic() + timeout
        delay = 0.0005
        while not transport.is_closing() and time.monotonic() < deadline:
            if transport.get_write_buffer_size() == 0 and _loopback_peer_unread(sock) == 0:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.005)
        return
    if sock.family != socket.AF_UNIX:
        return
    deadline = time.monotonic() + timeout
    delay = 0.0005
    unread = array.array("i", [0])
    while not transport.is_closing() and time.monotonic() < deadline:
        try:
            fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, unread)  # TIOCOUTQ == SIOCOUTQ
        except OSError:
            return
        if unread[0] == 0 and transport.get_write_buffer_size() == 0:
            return
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.005)
