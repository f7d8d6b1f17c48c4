"""The connection protocol: HTTP/1.1 on asyncio/uvloop with httptools (llhttp).

One :class:`HttpProtocol` per connection, made by :class:`Server` (the factory a site
listens with). What it guarantees:

* **Order**: requests are handled one at a time; pipelined ones wait in a queue (reading
  stops while one does) and are answered in order. More than ``MAX_PIPELINED`` in one read
  end the connection once those are answered.
* **Bodies** stream to ``request.content`` (Content-Length or chunked), with flow control:
  the socket is not read while more than ``StreamReader.HIGH_WATER`` bytes wait unread.
  ``Expect: 100-continue`` is answered when the handler first waits for the body (a request
  refused before, e.g. 413 by its length, never gets its body sent). What a handler left
  unread is read and dropped (at most ``LINGER`` seconds) so the connection can go on.
* **Refused at once** (a JSON ``{"message"}`` and the connection closed): a parse error
  (400), ``Content-Length`` with ``Transfer-Encoding`` or two lengths (400: smuggling), a
  request target over ``MAX_LINE`` bytes (414), a header field over ``MAX_FIELD`` or a head
  over ``MAX_HEAD`` bytes (431).
* **Keep-alive** as HTTP/1.0 and 1.1 say (``Connection: close``/``keep-alive``); ``HEAD``
  and 1xx/204/304 answers have no body.
* **Writes wait** (``drain``) while the transport's buffer is over its high-water mark, so a
  client that does not read stops its own handler, not the daemon's memory.
* **A client that hangs up**: the request's body raises ``ConnectionResetError``, writes
  raise it, and the handler task is cancelled when its answer had started (a stream: logs,
  events, a pull) or the request was a ``GET``/``HEAD``; other handlers run to their end
  (a create or a commit is not cut half-way, as aiohttp without handler_cancellation).
* **Upgrades**: after an ``Upgrade`` request's head nothing is parsed; the bytes after it go
  to ``request.content`` (a hijacking handler takes them with ``read_nowait`` and calls
  ``transport.set_protocol``); the connection closes when its handler ends.
* **Limits** (:class:`dockyard.api.limits.Limits`, optional): the header timeout (408), the
  idle keep-alive timeout, the per-peer connection count (``over_cap``, answered 429 by the
  middleware). The **fast path** (:class:`dockyard.api.fastpath.FastPath`, optional) answers
  plain bodiless ``GET``/``HEAD`` requests on an idle connection before any Request exists.
* **Shutdown** (:meth:`Server.shutdown`): idle connections close, in-flight handlers get
  the timeout, then are cancelled.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import time
from typing import Any, Callable

import httptools

from ..tasks import spawn
from .web import (EMPTY_PAYLOAD, CIMultiDict, HTTPException, HttpVersion10, HttpVersion11, Request, Response,
                  StreamReader, StreamResponse)

log = logging.getLogger("dockyard.http")

MAX_LINE = 8190  # the request target (aiohttp's max_line_size)
MAX_FIELD = 8190  # one header's name or value (aiohttp's max_field_size)
MAX_HEAD = 64 << 10  # a whole head, what a client may make us buffer before it is complete
MAX_HEADERS = 1000  # fields in one head
MAX_PIPELINED = 128  # requests queued on one connection
LINGER = 10.0  # seconds to read and drop an unread body after its answer (aiohttp's lingering_time)
ERROR_LINGER = 2.0  # seconds to read and drop input after an error answer
_METHODS = {m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")}


class _Refuse(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = status, reason, message


def error_bytes(status: int, reason: str, message: str) -> bytes:
    """A whole Docker-style error answer (``{"message": ...}``) that closes the connection."""
    body = json.dumps({"message": message}).encode() + b"\n"
    return (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body


class Server:
    """The protocol factory of a runner: every connection it made, the request count."""

    def __init__(self, app: Any, *, limits: Any = None, fast: Any = None, access_log: Any = None,
                 keepalive_timeout: float = 75.0) -> None:
        self.app = app
        self.limits = limits
        self.fast = fast
        self.access_log = access_log
        self.keepalive_timeout = keepalive_timeout
        self.connections: set[HttpProtocol] = set()
        self.requests_count = 0  # requests handled (fast-path pings are not counted: api.janitor)
        self.loop = asyncio.get_running_loop()

    def __call__(self) -> "HttpProtocol":
        return HttpProtocol(self)

    async def shutdown(self, timeout: float = 2.0) -> None:
        """Close idle connections now; give running handlers ``timeout`` s, then cancel them."""
        for conn in list(self.connections):
            conn.close_when_done()
        tasks = [c.task for c in self.connections if c.task is not None and not c.task.done()]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)
        for conn in list(self.connections):
            conn.abort()
        tasks = [c.task for c in self.connections if c.task is not None and not c.task.done()]
        if tasks:
            await asyncio.wait(tasks, timeout=1.0)


class HttpProtocol(asyncio.Protocol):
    """One client connection (see the module docstring)."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.loop = server.loop
        self.limits = server.limits
        self.fast = server.fast
        self.transport: Any = None
        self.parser = httptools.HttpRequestParser(self)
        # the message being parsed
        self._url: list[bytes] = []
        self._raw_headers: list[tuple[bytes, bytes]] = []
        self._in_head = False
        self._head_size = 0
        self._fields_size = 0
        self._parsing: Request | None = None  # its Request (None for a fast-path candidate)
        self._fast_candidate = False
        self._method = ""
        # requests
        self.current: Request | None = None
        self.task: asyncio.Task[None] | None = None
        self.queue: collections.deque[Request] = collections.deque()
        self.response: StreamResponse | None = None  # the current request's, once started
        self._upgraded = False  # an Upgrade request was parsed: no more parsing
        self._upgrade_req: Request | None = None
        self._upgrade_need = 0  # the Upgrade request's own body (Content-Length) still to come
        self._tail: list[bytes] | None = None  # the raw stream after that body, until the answer starts
        self._dead_parser = False  # an error or too many pipelined: answer what is queued, then close
        self._pending_error: bytes | None = None
        self._discarding: Request | None = None  # a request whose unread body is being dropped
        self._linger: asyncio.TimerHandle | None = None
        self._closing = False  # close after the current answer
        # flow control
        self._read_pauses: set[str] = set()
        self.writing_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        # limits
        self.peer: Any = None
        self.counted: Any = None
        self.over_cap = False
        self.peer_info: Any = None  # the middleware's Peer for this connection (it cannot change)
        self._header_timer: asyncio.TimerHandle | None = None
        self._idle_handle: asyncio.TimerHandle | None = None
        self._idle_deadline = 0.0

    # -- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.server.connections.add(self)
        limits = self.limits
        if limits is not None:
            peer = limits.peer_of(transport)
            if limits.acquire(peer, transport):
                self.peer, self.counted = peer, transport
            else:
                self.over_cap = True  # answered 429 by the middleware, then closed
            self._arm_header_timer()

    def connection_lost(self, exc: BaseException | None) -> None:
        self.server.connections.discard(self)
        self._cancel_header_timer()
        if self._idle_handle is not None:
            self._idle_handle.cancel()
            self._idle_handle = None
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        if self.peer is not None:
            self.limits.release(self.peer, self.counted)
            self.peer = self.counted = None
        lost = ConnectionResetError("Connection lost") if exc is None else exc
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionResetError("Connection lost"))
            waiter.exception()  # nobody may be waiting any more
        self.queue.clear()
        request = self.current
        if request is not None:
            if not request.content.is_eof() or request.upgrade:
                request.content.set_exception(lost)
            task = self.task
            response = self.response
            # not once its answer has ended: the handler is in its cleanup then (unmounting a
            # rootfs after an export), which a cancel would cut short
            if task is not None and not task.done() and (response is None or not response._eof_sent) and (
                    (response is not None and response.prepared) or request.method in ("GET", "HEAD")):
                task.cancel()
        self.transport = None

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        waiter = self._drain_waiter
        if waiter is not None:
            self._drain_waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def data_received(self, data: bytes) -> None:
        if self._upgraded or self._dead_parser:
            if self._upgraded:
                self._upgrade_feed(data)
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self._upgraded = True
            self._upgrade_req = self._parsing or (self.queue[-1] if self.queue else self.current)
            self._parsing = None
            self._upgrade_feed(data[upgrade.args[0]:] if upgrade.args else b"")
            return
        except _Refuse as refuse:
            self._refuse(refuse.code, refuse.reason, refuse.message)
            return
        except httptools.HttpParserCallbackError as err:
            cause = err.__context__ or err.__cause__
            if isinstance(cause, _Refuse):
                self._refuse(cause.code, cause.reason, cause.message)
            elif isinstance(cause, _Stop):
                self._stop_parsing()
            else:
                log.error("HTTP parser callback failed", exc_info=cause or err)
                self._refuse(500, "Internal Server Error", "internal error while reading the request")
            return
        except httptools.HttpParserError as err:
            self._refuse(400, "Bad Request", f"malformed HTTP request: {_parser_message(err)}")
            return
        if self._in_head:
            # the read a head began in also held what came before it (pipelined requests, a body):
            # counted from the next read (one read is bounded; complete fields by _fields_size)
            self._head_size = 0 if self._head_size < 0 else self._head_size + len(data)
            if self._head_size > MAX_HEAD:
                self._refuse(431, "Request Header Fields Too Large",
                             f"the request head is larger than {MAX_HEAD} bytes")
                return
            if self._header_timer is None:
                self._arm_header_timer()  # part of a head: it has header_timeout to complete

    def eof_received(self) -> bool | None:
        return None  # close our side too (the default): no half-open connections

    # -- httptools callbacks ------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = []
        self._raw_headers = []
        self._in_head = True
        self._head_size = -1  # began in this read (see data_received)
        self._fields_size = 0
        if len(self.queue) >= MAX_PIPELINED:
            raise _Stop()

    def on_url(self, url: bytes) -> None:
        self._url.append(url)
        if len(self._url) > 1 and sum(map(len, self._url)) > MAX_LINE or len(url) > MAX_LINE:
            raise _Refuse(414, "URI Too Long", f"the request target is longer than {MAX_LINE} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) > MAX_FIELD or len(value) > MAX_FIELD:
            raise _Refuse(431, "Request Header Fields Too Large",
                          f"a request header is longer than {MAX_FIELD} bytes")
        self._raw_headers.append((name, value))
        self._fields_size += len(name) + len(value)  # a long head in one read (else counted per read)
        if self._fields_size > MAX_HEAD or len(self._raw_headers) > MAX_HEADERS:
            raise _Refuse(431, "Request Header Fields Too Large",
                          f"the request head is larger than {MAX_HEAD} bytes or has over {MAX_HEADERS} fields")

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._cancel_header_timer()
        parser = self.parser
        method_b = parser.get_method()
        method = _METHODS.get(method_b) or method_b.decode("latin-1")
        self._method = method
        length = chunked = expect = None
        for name, value in self._raw_headers:
            n = len(name)
            if n == 14 and name.lower() == b"content-length":
                if length is not None and length != value.strip():
                    raise _Refuse(400, "Bad Request", "conflicting Content-Length headers")
                length = value.strip()
            elif n == 17 and name.lower() == b"transfer-encoding":
                chunked = value
            elif n == 6 and name.lower() == b"expect":
                expect = value
        if length is not None and chunked is not None:
            raise _Refuse(400, "Bad Request", "Content-Length and Transfer-Encoding together (request smuggling)")
        upgrade = parser.should_upgrade()
        keep_alive = parser.should_keep_alive()
        # the fast path: a bodiless plain request on an idle connection, answered at its end
        if (self.fast is not None and (method == "GET" or method == "HEAD") and length is None
                and chunked is None and expect is None and not upgrade and keep_alive
                and parser.get_http_version() == "1.1" and self.is_idle()):
            self._fast_candidate = True
            self._parsing = None
            return
        self._fast_candidate = False
        if upgrade and chunked is not None:  # its end cannot be told from the stream after it
            raise _Refuse(400, "Bad Request", "an Upgrade request's body needs a Content-Length, not chunked")
        if upgrade and length is not None and length != b"0":
            try:
                self._upgrade_need = int(length)
            except ValueError:
                raise _Refuse(400, "Bad Request", "invalid Content-Length") from None
            self._tail = []
        elif upgrade:
            self._tail = []  # no body: all that follows is the upgraded stream (RED)
        self._parsing = self._make_request(method, upgrade, keep_alive,
                                           has_body=upgrade or chunked is not None or (
                                               length is not None and length != b"0"),
                                           chunked=chunked is not None, expect=expect)
        if upgrade and not self._upgrade_need:
            self._parsing.content.feed_eof()

    def on_body(self, body: bytes) -> None:
        request = self._parsing
        if request is None or request is self._discarding:
            return
        request.content.feed_data(body)

    def on_message_complete(self) -> None:
        if self._fast_candidate:
            self._fast_candidate = False
            if self.fast.serve(self, self._method, self.target()):
                return
            self._parsing = self._make_request(self._method, False, True, has_body=False, chunked=False,
                                               expect=None)
        request = self._parsing
        self._parsing = None
        if request is None:
            return
        if not request.upgrade:
            request.content.feed_eof()
        if request is self._discarding:
            self._discarding = None
            if self._linger is not None:
                self._linger.cancel()
                self._linger = None
            self._next()
        elif self.queue or (self.current is not None and self.current is not request):
            self._pause("pipeline")  # answered in order: no more reading until the queue drains

    # -- requests -------------------------------------------------------------------------------

    def _upgrade_feed(self, data: bytes) -> None:
        """Bytes after an Upgrade request's head: its body (Content-Length, e.g. exec start's
        JSON), then the raw stream, which ``request.content`` gets once the answer starts (a
        hijacking handler takes it with ``read_nowait``; the JSON was read whole before)."""
        request = self._upgrade_req
        if request is None or not data:
            return
        need = self._upgrade_need
        if need:
            part = data[:need]
            request.content.feed_data(part)
            self._upgrade_need = need = need - len(part)
            data = data[len(part):]
            if not need:
                request.content.feed_eof()
        if not data:
            return
        if self._tail is not None:
            self._tail.append(data)
            if sum(map(len, self._tail)) > StreamReader.HIGH_WATER:
                self._pause("tail")
        else:
            request.content.feed_data(data)

    def target(self) -> str:
        url = self._url
        return (url[0] if len(url) == 1 else b"".join(url)).decode("latin-1")

    def build_request(self) -> Request:
        """The Request of the bodiless message being completed (for the fast path's hooks)."""
        return self._make_request(self._method, False, True, has_body=False, chunked=False, expect=None,
                                  start=False)

    def _make_request(self, method: str, upgrade: bool, keep_alive: bool, *, has_body: bool, chunked: bool,
                      expect: bytes | None, start: bool = True) -> Request:
        headers = CIMultiDict()
        items = headers._items
        for name, value in self._raw_headers:
            n = name.decode("latin-1")
            items.append((n.lower(), n, value.decode("latin-1")))
        version = HttpVersion11 if self.parser.get_http_version() == "1.1" else HttpVersion10
        content = StreamReader(self) if has_body else EMPTY_PAYLOAD
        request = Request(method, self.target(), headers, version, keep_alive, self, self.transport,
                          self.server.app, content, upgrade=upgrade, chunked=chunked)
        if expect is not None and has_body and version == HttpVersion11 and expect.lower() == b"100-continue":
            content._on_wait = lambda: self._send_continue(request)
        if start:
            if self.current is None and not self.queue:
                self._start(request)
            else:
                self.queue.append(request)
        return request

    def is_idle(self) -> bool:
        """No request in progress or queued, nothing paused, under the cap: what the fast
        path needs to answer in place (else the normal path keeps the order and the drain)."""
        return (self.current is None and not self.queue and not self.over_cap and not self.writing_paused
                and not self._closing and not self._dead_parser and self.transport is not None
                and self._discarding is None)

    def start(self, request: Request, run: Callable[[], Any]) -> None:
        """Handle ``request`` with ``run()`` (a coroutine function returning the response, or
        None when it wrote the answer itself) in its turn: the fast path's hooked answers."""
        request._state["_run"] = run
        if self.current is None and not self.queue:
            self._start(request)
        else:
            self.queue.append(request)

    def _start(self, request: Request) -> None:
        self.current = request
        self.response = None
        self.server.requests_count += 1
        self.task = request.task = spawn(self._handle(request), "HTTP request")  # type: ignore[assignment]

    async def _handle(self, request: Request) -> None:
        response: StreamResponse | None = None
        started = time.monotonic() if self.server.access_log is not None else 0.0
        try:
            try:
                run = request._state.pop("_run", None)
                if run is not None:
                    response = await run()
                else:
                    app = self.server.app
                    info = app.router.match_request(request)
                    info._apps.append(app)
                    request._match_info = info
                    response = await app.handler_for(request)(request)
            except HTTPException as exc:
                response = exc
            except (asyncio.CancelledError, ConnectionError):
                raise
            except Exception:
                log.exception("error handling %s %s", request.method, request.path)
                response = self._internal_error()
            if self._pending_error is not None and self.response is None and self._parsing is None \
                    and not request.content.is_eof():  # (RED) a whole body: the error is a later request's
                # this request's own body was malformed: its 400, not what the handler made of it
                error, self._pending_error = self._pending_error, None
                self._write_and_close(error)
                return
            if response is not None:
                try:
                    await self._send(request, response)
                except (asyncio.CancelledError, ConnectionError):
                    raise
                except Exception:
                    if response.prepared:
                        raise
                    log.exception("error answering %s %s", request.method, request.raw_path)
                    response = self._internal_error()
                    await self._send(request, response)
            elif self.writing_paused:  # answered in place (the fast path's hooked ping): drain too
                await self.drain()
        except asyncio.CancelledError:
            self.close()
            raise
        except ConnectionError:
            if self._pending_error is not None and self.response is None:
                error, self._pending_error = self._pending_error, None
                self._write_and_close(error)
            self.close()
        except Exception:
            log.exception("error answering %s %s", request.method, request.raw_path)
            self.close()
        finally:
            if self.server.access_log is not None:
                self._access(request, response, time.monotonic() - started)
            self._finish(request, response)

    def _internal_error(self) -> StreamResponse:
        if self.response is not None and self.response.prepared:
            raise ConnectionAbortedError("the handler failed after its answer started")
        return Response(status=500, text="500 Internal Server Error\n\nServer got itself in trouble")

    async def _send(self, request: Request, response: StreamResponse) -> None:
        if not response.prepared:
            if type(response) is Response or (isinstance(response, Response)
                                               and type(response).prepare is Response.prepare):
                response._send_whole(request, self)
                if self.writing_paused:
                    await self.drain()
                return
            await response.prepare(request)
        await response.write_eof()

    def _finish(self, request: Request, response: StreamResponse | None) -> None:
        if self.current is not request:
            return
        self.current = None
        self.task = None
        self.response = None
        transport = self.transport
        if transport is None:
            return
        if transport.get_protocol() is not self:  # hijacked: its handler ended, so does the connection
            transport.close()
            self.connection_lost(None)  # its own protocol gets the real one: forget this connection now
            return
        keep = (request.keep_alive and not self._closing and not request.upgrade and not self._upgraded
                and (response is None or response.keep_alive is not False))
        if not keep:
            if (not request.content.is_eof() or self._dead_parser) and not request.upgrade and not self._upgraded:
                # a body still coming (a 413), or requests past MAX_PIPELINED: the client reads
                # the answers, not a reset
                self._write_and_close(b"")
            else:
                self.close()
            return
        if not request.content.is_eof():
            # a body the handler did not read: drop the rest (at most LINGER s), then go on
            content = request.content
            content._buffer.clear()
            content._consumed(content._size)
            self._discarding = request
            self._linger = self.loop.call_later(LINGER, self.close)
            self._resume("body")
            return
        self._next()

    def _next(self) -> None:
        """The next queued request, or the keep-alive wait."""
        if self.queue:
            self._start(self.queue.popleft())
            if not self.queue:
                self._resume("pipeline")
            return
        self._resume("pipeline")
        if self._pending_error is not None:
            self._write_and_close(self._pending_error)
            return
        if self._dead_parser:
            self.close()
            return
        if self._in_head:  # a head begun while the last request ran: its header timeout runs from now
            self._arm_header_timer()
        self._touch_idle()

    def fast_answered(self) -> None:
        """The fast path answered a request: restart the keep-alive clock."""
        self._touch_idle()

    def close_when_done(self) -> None:
        """Shutdown: close now if idle, else after the current answer."""
        self._closing = True
        if self.current is None and not self.queue and self.transport is not None:
            self.close()

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def abort(self) -> None:
        """Shutdown's end: cancel what still runs and drop the connection."""
        if self.task is not None and not self.task.done():
            self.task.cancel()
        if self.transport is not None:
            self.transport.abort()

    def force_close(self) -> None:  # aiohttp's name
        self._closing = True
        if self.current is None:
            self.close()

    # -- writing ------------------------------------------------------------------------------

    def start_response(self, response: StreamResponse, request: Request) -> None:
        if request is self.current:
            self.response = response
            if request is self._upgrade_req and self._tail is not None:
                tail, self._tail = self._tail, None
                for chunk in tail:
                    request.content.feed_data(chunk)
                self._resume("tail")

    def send(self, data: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("Cannot write to closing transport")
        transport.write(data)

    def send_chunk(self, data: Any) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("Cannot write to closing transport")
        size = len(data)
        if size < 16384:
            transport.write(b"%x\r\n%b\r\n" % (size, data))
        else:
            transport.writelines((b"%x\r\n" % size, data, b"\r\n"))

    async def drain(self) -> None:
        transport = self.transport
        if transport is None:
            raise ConnectionResetError("Connection lost")
        if not self.writing_paused:
            return
        if transport.get_protocol() is not self:
            return  # taken over (attach, exec): resume_writing goes to the new protocol, not here
        waiter = self._drain_waiter
        if waiter is None or waiter.done():
            waiter = self._drain_waiter = self.loop.create_future()
        await asyncio.shield(waiter)

    def _send_continue(self, request: Request) -> None:
        if request is self.current and self.response is None and self.transport is not None \
                and not self.transport.is_closing():
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def _write_and_close(self, data: bytes) -> None:
        """An error answer, then a lingering close: our side ends (EOF) while what the client
        still sends is read and dropped for ``ERROR_LINGER`` s, so that it reads the answer
        instead of a reset (closing with unread input resets the connection)."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        self._dead_parser = True
        self._read_pauses.clear()
        transport.write(data)
        try:
            can_eof = transport.can_write_eof() and transport.get_protocol() is self
        except (NotImplementedError, AttributeError):
            can_eof = False
        if not can_eof:
            transport.close()
            return
        transport.write_eof()
        transport.resume_reading()
        if self._linger is not None:
            self._linger.cancel()
        self._linger = self.loop.call_later(ERROR_LINGER, self.close)

    def _refuse(self, status: int, reason: str, message: str) -> None:
        """A request we cannot parse or take: answered (after what is queued) and closed."""
        self._dead_parser = True
        self._in_head = False
        self._cancel_header_timer()
        data = error_bytes(status, reason, message)
        parsing = self._parsing
        if parsing is not None and parsing is not self.current and parsing in self.queue:
            self.queue.remove(parsing)  # its head was taken, its body is not
        if parsing is not None and not parsing.content.is_eof():
            parsing.content.set_exception(ConnectionResetError("malformed request body"))
        self._parsing = None
        if self.current is None and not self.queue:
            self._write_and_close(data)
        else:
            self._pending_error = data
            self._pause("error")

    def _stop_parsing(self) -> None:
        """Too many pipelined requests: answer those queued, then close."""
        self._dead_parser = True
        self._in_head = False
        if self.queue:
            self.queue[-1].keep_alive = False
        self._pause("error")

    # -- flow control -------------------------------------------------------------------------

    def _pause(self, reason: str) -> None:
        if not self._read_pauses:
            transport = self.transport
            if transport is not None and not transport.is_closing() and transport.get_protocol() is self:
                transport.pause_reading()
        self._read_pauses.add(reason)

    def _resume(self, reason: str) -> None:
        if reason in self._read_pauses:
            self._read_pauses.discard(reason)
            if not self._read_pauses:
                transport = self.transport
                if transport is not None and not transport.is_closing() and transport.get_protocol() is self:
                    transport.resume_reading()

    def pause_body(self) -> None:
        self._pause("body")

    def resume_body(self) -> None:
        self._resume("body")

    # -- timers -------------------------------------------------------------------------------

    def _arm_header_timer(self) -> None:
        limits = self.limits
        if limits is not None and limits.header_timeout and self._header_timer is None:
            self._header_timer = self.loop.call_later(limits.header_timeout, self._header_timed_out)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timed_out(self) -> None:
        self._header_timer = None
        if self.transport is None or self.current is not None or self.queue or self._closing:
            return
        self._dead_parser = True
        self._write_and_close(self.limits.timeout_response())

    def _touch_idle(self) -> None:
        timeout = self.server.keepalive_timeout
        if not timeout:
            return
        self._idle_deadline = self.loop.time() + timeout
        if self._idle_handle is None:
            self._idle_handle = self.loop.call_at(self._idle_deadline, self._idle_check)

    def _idle_check(self) -> None:
        self._idle_handle = None
        if self.transport is None or self.current is not None or self.queue or self._in_head:
            return
        if self.loop.time() < self._idle_deadline:
            self._idle_handle = self.loop.call_at(self._idle_deadline, self._idle_check)
            return
        self.close()

    # -- access log ---------------------------------------------------------------------------

    def _access(self, request: Request, response: StreamResponse | None, duration: float) -> None:
        logger = self.server.access_log
        try:
            status = response.status if response is not None else "-"
            size = response.body_length if response is not None else 0
            now = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime())
            v = request.version
            logger.info('%s [%s] "%s %s HTTP/%d.%d" %s %d "%s" "%s" %.6fs', request.remote or "-", now,
                        request.method, request.raw_path, v.major, v.minor, status, size,
                        request.headers.get("Referer", "-"), request.headers.get("User-Agent", "-"), duration)
        except Exception:
            log.exception("access log failed")


class _Stop(Exception):
    """Too many pipelined requests: stop parsing."""


def _parser_message(err: Exception) -> str:
    text = str(err) or type(err).__name__
    return text[:200]
