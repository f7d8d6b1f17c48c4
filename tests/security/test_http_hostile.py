"""Hostile clients against the daemon's own HTTP/1.1 server (dockyard.http.server), found by
attacking it from outside: each test is a way a client got more than the limits allow.

The daemon runs with small limits from its TOML config file (header timeout 2 s, idle
timeout 3 s) so that each is reached quickly.
"""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.privileged

# a bound on a hang, not an expectation
HANG = 20


@pytest.fixture
def daemon(tmp_path, make_daemon):
    conf = tmp_path / "dockyardd.toml"
    conf.write_text('api-header-timeout = 2\napi-idle-timeout = 3\n')
    return make_daemon("--config-file", str(conf), base=tmp_path / "d",
                       env={"DOCKYARD_DISABLE_PLUGINS": "auth_tls"})


def _connect(d) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(HANG)
    s.connect(str(d.socket))
    return s


def _read_to_eof(s: socket.socket) -> bytes:
    """Everything the daemon sends until it closes; a hang past HANG fails."""
    data = b""
    while True:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            raise AssertionError(f"the daemon kept the connection open; got {data[-200:]!r}") from None
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def test_a_head_begun_while_a_request_runs_still_has_the_header_timeout(daemon):
    """Slowloris behind a running request: a pipelined head started while the first request's
    handler ran (here an /events stream that ends after 3-4 s) must still be cut off by the header
    timeout once the connection is idle. It was not: the header timer fired while the handler
    ran and did nothing, and the idle check skips a connection in the middle of a head, so the
    connection stayed open forever with no timer."""
    s = _connect(daemon)
    until = int(time.time()) + 4  # ends after the 2 s header timer fired
    s.sendall(b"GET /events?until=%d HTTP/1.1\r\nHost: d\r\n\r\n"
              b"GET /_ping HTTP/1.1\r\nHost: d\r\nX-Slow: " % until)
    data = _read_to_eof(s)
    s.close()
    assert data.startswith(b"HTTP/1.1 200 "), data[:200]
    # the partial head got its 408 (or a plain close), never an answer as a request
    assert data.count(b"HTTP/1.1 ") == 1 or b"HTTP/1.1 408" in data, data[-300:]


def test_pipelined_requests_split_mid_head_after_64k_are_all_answered(daemon):
    """A picky but legal client: 100 pipelined requests (1.5 kB each, e.g. with a registry auth
    header), the last one's head split across two sends. Every request must be answered. They
    were refused 431 ("head larger than 65536 bytes"): the head size counted every byte of the
    read in which the head began, i.e. the 150 kB of complete requests before it."""
    one = b"GET /_ping HTTP/1.1\r\nHost: d\r\nX-Pad: " + b"p" * 1500 + b"\r\n\r\n"
    last = b"GET /_ping HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n"
    data = one * 100 + last
    cut = len(one) * 100 + 20
    s = _connect(daemon)
    s.sendall(data[:cut])
    time.sleep(0.5)  # the daemon reads the first part alone (not a timing assertion)
    try:
        s.sendall(data[cut:])
    except OSError:
        pass  # refused and closed: the answers tell
    answers = _read_to_eof(s)
    s.close()
    assert b"431" not in answers.split(b"\r\n", 1)[0], answers[:300]
    assert answers.count(b"HTTP/1.1 200 OK") == 101, answers[-300:]


def _answer_head(s: socket.socket) -> bytes:
    """The status line and headers of one answer (or what came before a close)."""
    data = b""
    while b"\r\n\r\n" not in data:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            raise AssertionError(f"no answer from the daemon; got {data!r}") from None
        if not chunk:
            break
        data += chunk
    return data


def test_an_upgrade_request_without_a_length_has_no_body(daemon):
    """A request with neither Content-Length nor Transfer-Encoding has no body (RFC 9112 6.3),
    also with ``Upgrade``: what follows its head is the upgraded stream. The stream was read as
    the body: a create (or exec start) with ``Upgrade`` and no body waited for the client's EOF
    taking its stream bytes as JSON, instead of answering at once as aiohttp did."""
    s = _connect(daemon)
    s.sendall(b"POST /containers/create HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\n"
              b"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n{\"Image\": ")
    head = _answer_head(s)
    s.close()
    assert head.startswith(b"HTTP/1.1 400 "), head[:300]


def test_an_upgrade_request_with_a_chunked_body_is_answered(daemon):
    """``Upgrade`` with a chunked body: the body's framing cannot be told from the stream after
    it once the parser stops at the head, so it is refused 400 at once. It hung: the raw chunk
    framing went to the handler as the body, which waited for an end that never came."""
    s = _connect(daemon)
    body = b'{"Image": "busybox"}'
    s.sendall(b"POST /containers/create HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\n"
              b"Connection: Upgrade\r\nUpgrade: tcp\r\nTransfer-Encoding: chunked\r\n\r\n"
              b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
    head = _answer_head(s)
    s.close()
    assert head.startswith(b"HTTP/1.1 400 "), head[:300]


def test_requests_pipelined_before_a_malformed_one_are_answered_first(daemon):
    """What the server promises (dockyard.http.server: "a parse error ... answered after what is
    queued"): two good pipelined requests, then garbage, get 200, 200, then the 400. The first
    request's handler took the later request's 400 for its own body's and sent it instead of
    its answer, so the client lost both answers."""
    s = _connect(daemon)
    good = b"GET /version HTTP/1.1\r\nHost: d\r\n\r\n"
    s.sendall(good + good + b"BOGUS\r\n\r\n")
    data = _read_to_eof(s)
    s.close()
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", data)  # /version's body has no such text
    assert statuses == [b"200", b"200", b"400"], data[-300:]


def test_a_ping_flood_from_a_client_that_never_reads_is_not_buffered(tmp_path):
    """WebSocket (attach/ws): every ping is answered by a pong; a client that sends pings and
    never reads made the server queue every pong in memory (200k pings: +35 MB RSS, unbounded).
    Reading now stops while the pongs wait to be sent, so the client is the one held."""
    import asyncio
    import base64
    import os
    import struct

    from dockyard.http import web

    transports: list = []

    async def handler(request):
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        transports.append(request.transport)
        async for _ in ws:
            pass
        return ws

    async def go():
        app = web.Application()
        app.router.add_get("/ws", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        path = str(tmp_path / "ws.sock")
        await web.UnixSite(runner, path).start()
        try:
            reader, writer = await asyncio.open_unix_connection(path)
            key = base64.b64encode(os.urandom(16)).decode()
            writer.write((f"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                          f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
            assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
            mask = b"\x01\x02\x03\x04"
            ping = struct.pack("!BB", 0x89, 0x80 | 125) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(b"p" * 125))
            sent = 0
            while sent < 400_000:  # 50 MB of pongs if all were answered into memory
                writer.write(ping * 1000)
                sent += 1000
                try:
                    await asyncio.wait_for(writer.drain(), 2)
                except asyncio.TimeoutError:
                    break  # the server stopped reading: held, as it should be
            buffered = transports[0].get_write_buffer_size()
            writer.transport.abort()
            assert buffered < 8 << 20, f"{sent} pings sent, {buffered >> 20} MB of pongs buffered"
        finally:
            await runner.cleanup()

    asyncio.run(asyncio.wait_for(go(), 120))
