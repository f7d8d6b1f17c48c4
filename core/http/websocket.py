"""WebSocket, server side (RFC 6455), for ``GET /containers/{id}/attach/ws``.

:class:`WebSocketResponse` is shaped like aiohttp's (``prepare``, ``send_bytes``/``send_str``,
``receive``, ``close``, ``async for msg in ws``) for the subset Dockyard uses, so a handler
reads the same. ``prepare()`` checks the client's handshake (a bad one is a 400 before
anything is sent), answers ``101 Switching Protocols`` and then takes the connection over the
way a hijacked attach does: the HTTP protocol stops parsing, the bytes it had already read past
the request head are handed on, and this module's :class:`_Protocol` reads frames from then on.

What the server side enforces: client frames must be masked; reserved bits and opcodes are
refused (no extension is negotiated); control frames are final and at most 125 bytes; a
fragmented message is continued only by continuation frames; a message over ``max_msg_size``
is refused (1009); a text message must be UTF-8 (1007); a close frame's code must be one a
peer may send (1002). A protocol error sends a close frame with its code and ends the
connection. Pings are answered with pongs (``autoping``). Reading is flow-controlled: the
socket is paused while more than ``HIGH_WATER`` bytes of messages wait to be received.
Writes wait while the transport's buffer is full (a client that does not read cannot make the
daemon buffer without bound).

Imported lazily (``web.WebSocketResponse`` loads it on first use): an idle daemon does not
carry it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import enum
import hashlib
import json
import struct
from typing import Any, NamedTuple

from . import web

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA


class WSMsgType(enum.IntEnum):
    """aiohttp's values, so code comparing ``msg.type`` reads the same."""
    CONTINUATION = 0x0
    TEXT = 0x1
    BINARY = 0x2
    PING = 0x9
    PONG = 0xA
    CLOSE = 0x8
    CLOSING = 0x100
    CLOSED = 0x101
    ERROR = 0x102


class WSCloseCode(enum.IntEnum):
    OK = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    ABNORMAL_CLOSURE = 1006
    INVALID_TEXT = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    MANDATORY_EXTENSION = 1010
    INTERNAL_ERROR = 1011


class WSMessage(NamedTuple):
    type: WSMsgType
    data: Any
    extra: Any

    def json(self, *, loads: Any = json.loads) -> Any:
        return loads(self.data)


WS_CLOSED_MESSAGE = WSMessage(WSMsgType.CLOSED, None, None)
WS_CLOSING_MESSAGE = WSMessage(WSMsgType.CLOSING, None, None)


class WebSocketError(Exception):
    """A peer broke the protocol: ``code`` is the close code to answer with."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def accept_key(key: str) -> str:
    """``Sec-WebSocket-Accept`` for a client's ``Sec-WebSocket-Key`` (RFC 6455 4.2.2)."""
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + GUID).digest()).decode("ascii")


def _valid_close_code(code: int) -> bool:
    """Codes a peer may send in a close frame (RFC 6455 7.4; 1004-1006 and 1015 are reserved
    for reporting, never sent)."""
    return code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014) \
        or 3000 <= code <= 4999


def unmask(mask: bytes, data: bytes) -> bytes:
    """XOR ``data`` with the 4-byte ``mask`` repeated: one big-integer XOR, no per-byte loop."""
    n = len(data)
    if not n:
        return b""
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(key, "little")).to_bytes(n, "little")


def frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """A server frame (never masked)."""
    n = len(payload)
    first = (0x80 if fin else 0) | opcode
    if n < 126:
        head = struct.pack("!BB", first, n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", first, 126, n)
    else:
        head = struct.pack("!BBQ", first, 127, n)
    return head + payload


class FrameReader:
    """Parses client frames into whole messages: ``feed(data)`` returns the messages completed
    by ``data`` as ``(opcode, payload)``, payload bytes (text still undecoded); raises
    :class:`WebSocketError` on a protocol violation."""

    def __init__(self, max_msg_size: int) -> None:
        self.max_msg_size = max_msg_size
        self.buf = bytearray()
        self.fragments: list[bytes] = []
        self.fragment_op: int | None = None
        self.fragment_size = 0

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self.buf += data
        out: list[tuple[int, bytes]] = []
        while True:
            got = self._one()
            if got is None:
                return out
            if got[0] >= 0:
                out.append(got)  # type: ignore[arg-type]

    def _one(self) -> tuple[int, bytes] | None:
        buf = self.buf
        if len(buf) < 2:
            return None
        b0, b1 = buf[0], buf[1]
        fin, opcode = bool(b0 & 0x80), b0 & 0x0F
        if b0 & 0x70:
            raise WebSocketError(WSCloseCode.PROTOCOL_ERROR, "reserved bits set (no extension was negotiated)")
        if not b1 & 0x80:
            raise WebSocketError(WSCloseCode.PROTOCOL_ERROR, "a client frame must be masked")
        length = b1 & 0x7F
        pos = 2
        control = opcode >= 0x8
        if opcode not in (OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG):
            raise WebSocketError(WSCloseCode.PROTOCOL_ERROR, f"unknown opcode {opcode:#x}")
        if control and (not fin or length > 125):
            raise WebSocketError(WSCloseCode.PROTOCOL_ERROR, "a control frame must be final and at most 125 bytes")
        if length == 126:
            if len(buf) < 4:
                return None
            length = struct.unpack_from("!H", buf, 2)[0]
            pos = 4
        elif length == 127:
            if len(buf) < 10:
                return None
            length = struct.unpack_from("!Q", buf, 2)[0]
            if length >> 63:
                raise WebSocketError(WSCloseCode.PROTOCOL_ERROR, "frame length has its top bit set")
            pos = 10
        if not control:
            if opcode == OP_CONTINUATION and self.fragment_op is None:
                raise WebSocketError(WSCloseCode.PROTOCOL_ERROR, "continuation frame without a message to continue")
            if opcode != OP_CONTINUATION and self.fragment_op is not None:
                raise WebSocketError(WSCloseCode.PROTOCOL_ERROR, "new message inside a fragmented one")
            # refuse before buffering it: the size is known from the header
            if self.max_msg_size and self.fragment_size + length > self.max_msg_size:
                raise WebSocketError(WSCloseCode.MESSAGE_TOO_BIG,
                                     f"message over {self.max_msg_size} bytes")
        end = pos + 4 + length
        if len(buf) < end:
            return None
        mask = bytes(buf[pos:pos + 4])
        payload = unmask(mask, bytes(buf[pos + 4:end]))
        del buf[:end]
        if control:
            return opcode, payload
        if opcode != OP_CONTINUATION:
            self.fragment_op = opcode
        self.fragments.append(payload)
        self.fragment_size += length
        if not fin:
            return -1, b""  # a fragment: nothing complete yet, keep parsing
        op = self.fragment_op
        whole = b"".join(self.fragments)
        self.fragments, self.fragment_op, self.fragment_size = [], None, 0
        assert op is not None
        return op, whole


class _Protocol(asyncio.Protocol):
    """The connection after the 101: frames in, messages queued for ``receive()``."""

    HIGH_WATER = 4 << 20
    LOW_WATER = 1 << 20

    def __init__(self, ws: WebSocketResponse, transport: asyncio.Transport) -> None:
        self.ws = ws
        self.transport = transport
        self.reader = FrameReader(ws.max_msg_size)
        self.queue: asyncio.Queue[WSMessage] = asyncio.Queue()
        self.queued = 0
        self.paused = False
        self.pong_paused = False  # reading stopped while pongs wait to be sent
        self.lost = False
        self.writable = asyncio.Event()
        self.writable.set()
        self.failed = False

    def data_received(self, data: bytes) -> None:
        if self.failed:
            return
        try:
            messages = self.reader.feed(data)
        except WebSocketError as exc:
            self.fail(exc.code, str(exc))
            return
        for op, payload in messages:
            self.deliver(op, payload)
            if self.failed:
                return
        if self.queued > self.HIGH_WATER and not self.paused and not self.transport.is_closing():
            self.paused = True
            self.transport.pause_reading()

    def deliver(self, op: int, payload: bytes) -> None:
        ws = self.ws
        if op == OP_TEXT:
            try:
                text = payload.decode("utf-8")
            except UnicodeDecodeError:
                self.fail(WSCloseCode.INVALID_TEXT, "text message is not UTF-8")
                return
            self.put(WSMessage(WSMsgType.TEXT, text, ""), len(payload))
        elif op == OP_BINARY:
            self.put(WSMessage(WSMsgType.BINARY, payload, ""), len(payload))
        elif op == OP_PING:
            if ws.autoping:
                if not ws._closing_sent:
                    self.transport.write(frame(OP_PONG, payload))
                    if not self.writable.is_set() and not self.pong_paused:  # (RED) a client that does
                        self.pong_paused = True  # not read its pongs: stop reading its pings till they go
                        self.transport.pause_reading()
            else:
                self.put(WSMessage(WSMsgType.PING, payload, ""), len(payload))
        elif op == OP_PONG:
            if not ws.autoping:
                self.put(WSMessage(WSMsgType.PONG, payload, ""), len(payload))
        elif op == OP_CLOSE:
            code, reason = WSCloseCode.OK.value, ""
            if len(payload) == 1:
                self.fail(WSCloseCode.PROTOCOL_ERROR, "close frame of one byte")
                return
            if len(payload) >= 2:
                code = struct.unpack_from("!H", payload)[0]
                if not _valid_close_code(code):
                    self.fail(WSCloseCode.PROTOCOL_ERROR, f"invalid close code {code}")
                    return
                try:
                    reason = payload[2:].decode("utf-8")
                except UnicodeDecodeError:
                    self.fail(WSCloseCode.INVALID_TEXT, "close reason is not UTF-8")
                    return
            ws._close_received(code)
            self.put(WSMessage(WSMsgType.CLOSE, code, reason), 0)
            self.failed = True  # nothing after a close frame is read

    def put(self, msg: WSMessage, size: int) -> None:
        if self.ws._closing_sent and msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
            return  # close() is waiting for the peer's close frame: data after ours is dropped
        self.queued += size
        self.queue.put_nowait(msg)

    def fail(self, code: int, message: str) -> None:
        """A protocol error: answer with a close frame and end the connection."""
        self.failed = True
        self.ws._fail(code, message)
        self.queue.put_nowait(WSMessage(WSMsgType.ERROR, WebSocketError(code, message), None))

    def eof_received(self) -> bool | None:
        return None  # the transport closes; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.writable.set()
        self.queue.put_nowait(WS_CLOSED_MESSAGE)
        self.ws._lost()

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()
        if self.pong_paused:
            self.pong_paused = False
            if not self.paused and not self.transport.is_closing():
                self.transport.resume_reading()

    async def get(self) -> WSMessage:
        msg = await self.queue.get()
        if isinstance(msg.data, bytes | str):
            self.queued -= len(msg.data.encode() if isinstance(msg.data, str) else msg.data)
        if self.paused and self.queued < self.LOW_WATER:
            self.paused = False
            if not self.transport.is_closing() and not self.pong_paused:
                self.transport.resume_reading()
        return msg


class WebSocketResponse(web.StreamResponse):
    """The server end of a WebSocket (aiohttp's names). ``prepare(request)`` does the
    handshake; then ``send_bytes``/``send_str``/``send_json``/``ping`` write, ``receive``
    reads (``async for msg in ws`` yields TEXT/BINARY messages until a close), ``close``
    sends the close frame and waits (``timeout``) for the peer's."""

    # the 101's head has no body length: the body is WebSocket frames until the close
    _length_check = False

    def __init__(self, *, timeout: float = 10.0, autoclose: bool = True, autoping: bool = True,
                 protocols: tuple[str, ...] | list[str] = (), max_msg_size: int = 4 << 20) -> None:
        super().__init__(status=101)
        self.timeout = timeout
        self.autoclose = autoclose
        self.autoping = autoping
        self.protocols = tuple(protocols)
        self.max_msg_size = max_msg_size
        self.ws_protocol: str | None = None
        self._conn: _Protocol | None = None
        self._transport: asyncio.Transport | None = None
        self._closing_sent = False
        self._closed = False
        self._close_code: int | None = None
        self._peer_closed: asyncio.Event | None = None  # made in prepare
        self._exception: BaseException | None = None

    # -- handshake ------------------------------------------------------------------------------

    def _handshake(self, request: web.Request) -> str:
        """Check the client's opening handshake (RFC 6455 4.2.1) and set the 101's headers;
        returns the ``Sec-WebSocket-Accept`` value. A bad handshake: ``HTTPBadRequest``."""
        h = request.headers
        if request.method != "GET":
            raise web.HTTPMethodNotAllowed(request.method, ["GET"])
        if "websocket" not in h.get("Upgrade", "").lower():
            raise web.HTTPBadRequest(text="No WebSocket UPGRADE hdr: {}\n Can \"Upgrade\" only to \"WebSocket\"."
                                     .format(h.get("Upgrade")))
        if "upgrade" not in [t.strip() for t in h.get("Connection", "").lower().split(",")]:
            raise web.HTTPBadRequest(text="No CONNECTION upgrade hdr: {}".format(h.get("Connection")))
        version = h.get("Sec-WebSocket-Version", "")
        if version != "13":
            raise web.HTTPBadRequest(text=f"Unsupported version: {version}")
        key = h.get("Sec-WebSocket-Key", "")
        try:
            if len(base64.b64decode(key, validate=True)) != 16:
                raise ValueError(key)
        except (binascii.Error, ValueError):
            raise web.HTTPBadRequest(text=f"Handshake error: {key!r}") from None
        offered = [p.strip() for p in h.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
        for p in offered:
            if p in self.protocols:
                self.ws_protocol = p
                break
        return accept_key(key)

    async def prepare(self, request: web.Request) -> Any:
        if self.prepared:
            return None
        accept = self._handshake(request)
        self.headers["Upgrade"] = "websocket"
        self.headers["Connection"] = "upgrade"
        self.headers["Sec-WebSocket-Accept"] = accept
        if self.ws_protocol:
            self.headers["Sec-WebSocket-Protocol"] = self.ws_protocol
        self.set_status(101, "Switching Protocols")
        self.force_close()
        writer = await super().prepare(request)
        transport = request.transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("the client went away")
        self._transport = transport
        self._peer_closed = asyncio.Event()
        conn = self._conn = _Protocol(self, transport)
        content = request.content
        early = content.read_nowait(-1) if not content.at_eof() else b""
        transport.set_protocol(conn)
        if early:
            conn.data_received(early)
        return writer

    # -- state ----------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed or self._closing_sent

    @property
    def close_code(self) -> int | None:
        return self._close_code

    def exception(self) -> BaseException | None:
        return self._exception

    def can_prepare(self, request: web.Request) -> tuple[bool, str | None]:
        try:
            self._handshake(request)
        except web.HTTPException:
            return False, None
        return True, self.ws_protocol

    # -- writing --------------------------------------------------------------------------------

    async def _send(self, opcode: int, payload: bytes) -> None:
        conn = self._conn
        if conn is None:
            raise RuntimeError("call prepare() first")
        if self._closing_sent or conn.lost or conn.transport.is_closing():
            raise ConnectionResetError("the websocket is closed")
        conn.transport.write(frame(opcode, payload))
        await conn.writable.wait()

    async def send_bytes(self, data: bytes, compress: int | None = None) -> None:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"data argument must be byte-ish ({type(data)!r})")
        await self._send(OP_BINARY, bytes(data))

    async def send_str(self, data: str, compress: int | None = None) -> None:
        if not isinstance(data, str):
            raise TypeError(f"data argument must be str ({type(data)!r})")
        await self._send(OP_TEXT, data.encode("utf-8"))

    async def send_json(self, data: Any, compress: int | None = None, *, dumps: Any = json.dumps) -> None:
        await self.send_str(dumps(data))

    async def ping(self, message: bytes = b"") -> None:
        await self._send(OP_PING, message[:125])

    async def pong(self, message: bytes = b"") -> None:
        await self._send(OP_PONG, message[:125])

    async def write(self, data: bytes) -> None:  # type: ignore[override]
        raise RuntimeError("Cannot call .write() for websocket")

    async def write_eof(self, data: bytes = b"") -> None:  # type: ignore[override]
        if not self._closed:
            await self.close()

    # -- closing --------------------------------------------------------------------------------

    def _send_close(self, code: int, message: bytes = b"") -> None:
        conn = self._conn
        if self._closing_sent or conn is None:
            return
        self._closing_sent = True
        if not conn.lost and not conn.transport.is_closing():
            conn.transport.write(frame(OP_CLOSE, struct.pack("!H", code) + message[:123]))

    def _close_received(self, code: int) -> None:
        if self._close_code is None:
            self._close_code = code
        if self._peer_closed is not None:
            self._peer_closed.set()
        if self.autoclose and not self._closing_sent:
            self._send_close(code if _valid_close_code(code) else WSCloseCode.OK)  # echo it
            self._finish()

    def _fail(self, code: int, message: str) -> None:
        self._exception = WebSocketError(code, message)
        self._close_code = code
        self._send_close(code, message.encode("utf-8"))
        self._finish()

    def _lost(self) -> None:
        if self._close_code is None:
            self._close_code = WSCloseCode.ABNORMAL_CLOSURE
        if self._peer_closed is not None:
            self._peer_closed.set()
        self._closed = True

    def _finish(self) -> None:
        """Both close frames are out (or the peer broke the protocol): the server closes the
        TCP connection first (RFC 6455 7.1.1)."""
        self._closed = True
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()

    async def close(self, *, code: int = WSCloseCode.OK, message: bytes = b"", drain: bool = True) -> bool:
        """Send a close frame (once) and wait up to ``timeout`` for the peer's; then close the
        connection. False if it was already closed."""
        if self._conn is None:
            raise RuntimeError("call prepare() first")
        if self._closed:
            return False
        if self._closing_sent:
            return False
        self._send_close(code, message)
        conn = self._conn
        if conn.paused and not conn.transport.is_closing():
            conn.paused = False  # the peer's close frame may be behind what is queued
            conn.transport.resume_reading()
        if self._close_code is None:
            self._close_code = code
        assert self._peer_closed is not None
        if not conn.lost:
            try:
                await asyncio.wait_for(self._peer_closed.wait(), self.timeout)
            except asyncio.TimeoutError:
                self._close_code = WSCloseCode.ABNORMAL_CLOSURE
        self._finish()
        return True

    # -- reading --------------------------------------------------------------------------------

    async def receive(self, timeout: float | None = None) -> WSMessage:
        conn = self._conn
        if conn is None:
            raise RuntimeError("call prepare() first")
        if self._closed and conn.queue.empty():
            return WS_CLOSED_MESSAGE
        if self._closing_sent and conn.queue.empty() and self._peer_closed is not None \
                and self._peer_closed.is_set():
            return WS_CLOSING_MESSAGE
        if timeout is None:
            return await conn.get()
        return await asyncio.wait_for(conn.get(), timeout)

    async def receive_str(self, *, timeout: float | None = None) -> str:
        msg = await self.receive(timeout)
        if msg.type != WSMsgType.TEXT:
            raise TypeError(f"Received message {msg.type}:{msg.data!r} is not WSMsgType.TEXT")
        return str(msg.data)

    async def receive_bytes(self, *, timeout: float | None = None) -> bytes:
        msg = await self.receive(timeout)
        if msg.type != WSMsgType.BINARY:
            raise TypeError(f"Received message {msg.type}:{msg.data!r} is not WSMsgType.BINARY")
        return bytes(msg.data)

    async def receive_json(self, *, loads: Any = json.loads, timeout: float | None = None) -> Any:
        return loads(await self.receive_str(timeout=timeout))

    def __aiter__(self) -> WebSocketResponse:
        return self

    async def __anext__(self) -> WSMessage:
        msg = await self.receive()
        if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
            raise StopAsyncIteration
        return msg
