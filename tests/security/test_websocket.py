"""The daemon's own WebSocket server side (dockyard.http.websocket, for
``GET /containers/{id}/attach/ws``): a real client (aiohttp's ws_connect) for what works, and
raw frames on a socket for what a hostile or broken client sends."""

import asyncio
import base64
import os
import struct

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dockyard.http import web
from dockyard.http.websocket import FrameReader, WebSocketError, WSMsgType, accept_key, unmask


async def _echo(request):
    ws = web.WebSocketResponse(max_msg_size=1 << 16)
    await ws.prepare(request)
    async for msg in ws:
        if msg.type == WSMsgType.TEXT:
            await ws.send_str("echo:" + msg.data)
        elif msg.type == WSMsgType.BINARY:
            await ws.send_bytes(msg.data[::-1])
    request.app[SEEN].append(ws.close_code)
    return ws


async def _push(request):
    """Server-initiated: three binary messages, then close (what attach_ws does)."""
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    for i in range(3):
        await ws.send_bytes(b"out%d" % i)
    await ws.close()
    request.app[SEEN].append(ws.close_code)
    return ws


async def _flood(request):
    """200 MB in 1 MB messages, counting what the socket took."""
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    chunk = b"x" * (1 << 20)
    try:
        for _ in range(200):
            await ws.send_bytes(chunk)
            request.app[SENT][0] += len(chunk)
    except ConnectionResetError:
        request.app[SEEN].append("reset")
    return ws


SEEN = web.AppKey("seen", list)
SENT = web.AppKey("sent", list)


class Server:
    def __init__(self, path):
        self.path = path

    async def __aenter__(self):
        app = web.Application()
        app[SEEN] = []
        app[SENT] = [0]
        app.router.add_get("/echo", _echo)
        app.router.add_get("/flood", _flood)
        app.router.add_get("/push", _push)
        self.app = app
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.UnixSite(self.runner, str(self.path)).start()
        return self

    async def __aexit__(self, *exc):
        await self.runner.cleanup()

    def session(self):
        return aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(self.path)))

    async def raw(self, path="/echo"):
        """A socket after a good handshake (the 101 read), for hand-made frames."""
        reader, writer = await asyncio.open_unix_connection(str(self.path))
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write((f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        lines = head.decode().split("\r\n")
        assert any(h.lower().startswith("sec-websocket-accept:") and h.split(":", 1)[1].strip() == accept_key(key)
                   for h in lines), head
        return reader, writer


def masked(opcode, payload, fin=True, mask=b"\x01\x02\x03\x04", rsv=0):
    first = (0x80 if fin else 0) | rsv | opcode
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", first, 0x80 | n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", first, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", first, 0x80 | 127, n)
    return head + mask + unmask(mask, payload)


async def read_frame(reader):
    b0, b1 = await reader.readexactly(2)
    assert not b1 & 0x80, "server frames are never masked"
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", await reader.readexactly(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", await reader.readexactly(8))[0]
    return b0 & 0x0F, await reader.readexactly(n)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def test_echo_with_a_real_client(tmp_path):
    async def go():
        async with Server(tmp_path / "s.sock") as srv, srv.session() as s:
            async with s.ws_connect("http://x/echo") as ws:
                await ws.send_str("héllo")
                assert (await ws.receive()).data == "echo:héllo"
                big = os.urandom(60000)  # 16-bit length form
                await ws.send_bytes(big)
                msg = await ws.receive()
                assert msg.type == aiohttp.WSMsgType.BINARY and msg.data == big[::-1]
                await ws.ping(b"p")  # answered by autoping; the conversation goes on
                await ws.send_str("again")
                assert (await ws.receive()).data == "echo:again"
            await asyncio.sleep(0)
            for _ in range(100):
                if srv.app[SEEN]:
                    break
                await asyncio.sleep(0.01)
            assert srv.app[SEEN] == [1000]
    run(go())


def test_server_push_then_close(tmp_path):
    async def go():
        async with Server(tmp_path / "s.sock") as srv, srv.session() as s:
            async with s.ws_connect("http://x/push") as ws:
                got = [m.data async for m in ws]
                assert got == [b"out0", b"out1", b"out2"]
                assert ws.close_code == 1000
            # the HTTP side forgets the taken-over connection (it kept one per attach before)
            for _ in range(200):
                if not srv.runner.server.connections:
                    break
                await asyncio.sleep(0.01)
            assert not srv.runner.server.connections
    run(go())


def test_bad_handshakes_are_400_before_any_upgrade(tmp_path):
    async def go():
        async with Server(tmp_path / "s.sock") as srv, srv.session() as s:
            good = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
                    "Sec-WebSocket-Key": base64.b64encode(b"k" * 16).decode()}
            for change in ({"Upgrade": "h2c"}, {"Connection": "keep-alive"},
                           {"Sec-WebSocket-Version": "8"}, {"Sec-WebSocket-Key": "short"},
                           {"Sec-WebSocket-Key": base64.b64encode(b"k" * 15).decode()}):
                async with s.get("http://x/echo", headers={**good, **change}) as r:
                    assert r.status == 400, change
    run(go())


@pytest.mark.parametrize("frames,code", [
    # an unmasked client frame
    (lambda: struct.pack("!BB", 0x81, 2) + b"hi", 1002),
    # reserved bits without an extension
    (lambda: masked(0x1, b"hi", rsv=0x40), 1002),
    # an unknown opcode
    (lambda: masked(0x3, b"hi"), 1002),
    # a fragmented control frame
    (lambda: masked(0x9, b"x", fin=False), 1002),
    # a control frame over 125 bytes
    (lambda: masked(0x9, b"x" * 126), 1002),
    # a continuation with nothing to continue
    (lambda: masked(0x0, b"x"), 1002),
    # a new message inside a fragmented one
    (lambda: masked(0x1, b"a", fin=False) + masked(0x1, b"b"), 1002),
    # a text message that is not UTF-8
    (lambda: masked(0x1, b"\xff\xfe"), 1007),
    # over max_msg_size (64 KiB): refused from its header, before it is buffered
    (lambda: masked(0x2, b"x" * 70000)[:20], 1009),
    # fragments adding up to more than max_msg_size
    (lambda: masked(0x2, b"x" * 40000, fin=False) + masked(0x0, b"x" * 40000), 1009),
    # a 64-bit length with the top bit set
    (lambda: bytes([0x82, 0xFF]) + b"\x80" + b"\0" * 7 + b"mask", 1002),
    # a close frame with one byte, or a code no peer may send
    (lambda: masked(0x8, b"\x03"), 1002),
    (lambda: masked(0x8, struct.pack("!H", 1005)), 1002),
])
def test_protocol_errors_close_with_their_code(tmp_path, frames, code):
    async def go():
        async with Server(tmp_path / "s.sock") as srv:
            reader, writer = await srv.raw()
            writer.write(frames())
            op, payload = await read_frame(reader)
            assert op == 0x8 and struct.unpack("!H", payload[:2])[0] == code, payload
            assert await reader.read() == b""  # and the server ends the connection
            writer.close()
    run(go())


def test_fragments_ping_and_close_handshake_raw(tmp_path):
    async def go():
        async with Server(tmp_path / "s.sock") as srv:
            reader, writer = await srv.raw()
            # a text message in three fragments with a ping between them
            writer.write(masked(0x1, b"ab", fin=False) + masked(0x9, b"png") + masked(0x0, b"c", fin=False)
                         + masked(0x0, "dé".encode()))
            assert await read_frame(reader) == (0xA, b"png")
            assert await read_frame(reader) == (0x1, "echo:abcdé".encode())
            # the client closes: the server echoes the code and ends the connection
            writer.write(masked(0x8, struct.pack("!H", 4001) + b"bye"))
            op, payload = await read_frame(reader)
            assert op == 0x8 and struct.unpack("!H", payload[:2])[0] == 4001
            assert await reader.read() == b""
            writer.close()
            for _ in range(100):
                if srv.app[SEEN]:
                    break
                await asyncio.sleep(0.01)
            assert srv.app[SEEN] == [4001]
    run(go())


def test_frames_sent_with_the_handshake_are_not_lost(tmp_path):
    """A client may pipeline its first frame right behind the request head: the HTTP layer has
    read it already and must hand it on."""
    async def go():
        async with Server(tmp_path / "s.sock") as srv:
            reader, writer = await asyncio.open_unix_connection(str(srv.path))
            key = base64.b64encode(os.urandom(16)).decode()
            writer.write(("GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                          f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()
                         + masked(0x1, b"early"))
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 101")
            assert await read_frame(reader) == (0x1, b"echo:early")
            writer.close()
    run(go())


def test_frame_reader_splits_anywhere():
    """Frames arriving a byte at a time parse as the whole does."""
    data = masked(0x2, b"x" * 300) + masked(0x1, b"hi", fin=False) + masked(0x0, b"!")
    r = FrameReader(1 << 20)
    got = []
    for i in range(len(data)):
        got += r.feed(data[i:i + 1])
    assert got == [(0x2, b"x" * 300), (0x1, b"hi!")]
    with pytest.raises(WebSocketError):
        FrameReader(10).feed(masked(0x2, b"x" * 11))


def test_a_client_that_never_reads_holds_the_sender(tmp_path):
    """Sending waits while the connection's buffer is full: a client that reads nothing makes
    the handler wait, not the daemon buffer 200 MB; its hang-up ends the handler."""
    async def go():
        async with Server(tmp_path / "s.sock") as srv:
            reader, writer = await srv.raw("/flood")
            sent, still = -1, 0
            while still < 50:  # until the count stops moving (what the socket holds is sent)
                await asyncio.sleep(0.01)
                now = srv.app[SENT][0]
                still = still + 1 if now == sent else 0
                sent = now
            assert sent < 32 << 20, sent
            writer.transport.abort()
            for _ in range(500):
                if srv.app[SEEN]:
                    break
                await asyncio.sleep(0.01)
            assert srv.app[SEEN] == ["reset"]
    run(go())


@settings(max_examples=300, deadline=None, database=None)
@given(data=st.one_of(
    st.binary(max_size=3000),
    st.lists(st.tuples(st.integers(0, 15), st.booleans(), st.binary(max_size=1100)), max_size=8).map(
        lambda frames: b"".join(masked(op, payload, fin=fin) for op, fin, payload in frames))),
    step=st.integers(1, 64))
def test_frame_reader_on_any_bytes(data, step):
    """Whatever arrives, in whatever pieces: whole messages within the size limit, or a
    WebSocketError with a close code; never another exception."""
    r = FrameReader(1024)
    try:
        for i in range(0, len(data), step):
            for op, payload in r.feed(data[i:i + step]):
                assert op in (0x1, 0x2, 0x8, 0x9, 0xA)
                assert len(payload) <= (125 if op >= 0x8 else 1024)
    except WebSocketError as exc:
        assert exc.code in (1002, 1009)
