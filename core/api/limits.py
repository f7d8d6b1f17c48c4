"""Request limits of the API server, whatever plugins are loaded (issue 13, finding 5).

* **JSON bodies** (everything but the streamed uploads: image load and import, build
  contexts, ``PUT .../archive``, and the raw stdin of hijacked attach/exec connections) are
  read at most ``api-max-json-body`` bytes: a larger one is answered ``413`` with a
  Docker-style ``{"message": ...}`` naming the limit (at once when ``Content-Length`` says
  so, else as soon as the limit is passed), and what is left of it is discarded, not kept.
* **Request heads** must be complete within ``api-header-timeout`` seconds of the
  connection opening or of their first byte on a kept-alive connection (Go's
  ``ReadHeaderTimeout``, which dockerd sets): a slow client is answered ``408`` and closed.
* **Idle keep-alive connections** are closed after ``api-idle-timeout`` seconds without a
  request (Go's ``IdleTimeout``; clients reconnect as they do with any server).
* **Connections per peer**: at most ``api-max-connections-per-peer`` open at once from one
  uid on the Unix socket (``SO_PEERCRED``), or one IP address on TCP/TLS. A connection over
  the cap gets ``429 Too Many Requests`` for its request and is closed: 429 says "you, slow
  down" (the cap counts this client's own connections) while the daemon keeps serving every
  other peer, which ``503 Service Unavailable`` would deny. An idle connection over the cap
  is closed by the header timeout.

``0`` turns a limit off. dockerd has none of these settings: the names are Dockyard's.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.log import access_logger
from aiohttp.streams import EMPTY_PAYLOAD
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_server import Server

DEFAULT_MAX_JSON_BODY = 4 << 20
DEFAULT_HEADER_TIMEOUT = 60.0
DEFAULT_IDLE_TIMEOUT = 300.0
DEFAULT_MAX_CONNECTIONS_PER_PEER = 512
PRUNE_AT = 8  # a peer's counted connections past which closed ones are looked for

# routes whose handlers stream the request body from ``request.content`` (not JSON)
STREAMED_BODY_ROUTES = frozenset({"/images/load", "/images/create", "/build", "/containers/{id}/archive"})
# a callable the app stores (make_app): the FastPath for the app, or None (dockyard.api.fastpath)
FAST_PATH: web.AppKey[Any] = web.AppKey("fast_path")
BINARY_TYPES = frozenset({"application/x-tar", "application/tar", "application/octet-stream",
                          "application/gzip", "application/x-gzip", "application/x-xz",
                          "application/x-bzip2", "application/zstd"})


@dataclass
class Limits:
    max_json_body: int = DEFAULT_MAX_JSON_BODY
    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    max_connections_per_peer: int = DEFAULT_MAX_CONNECTIONS_PER_PEER
    # peer -> its open connections' transports. A hijacked connection (attach, exec) gets a
    # protocol of its own, so our handler never hears of its end: a transport counts until it
    # is closing, checked when its peer reaches the cap.
    open: dict[tuple[str, Any], set[Any]] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: Any) -> "Limits":
        return cls(max_json_body=config.api_max_json_body, header_timeout=config.api_header_timeout,
                   idle_timeout=config.api_idle_timeout,
                   max_connections_per_peer=config.api_max_connections_per_peer)

    def acquire(self, peer: tuple[str, Any], transport: Any) -> bool:
        conns = self.open.setdefault(peer, set())
        if len(conns) >= PRUNE_AT:
            # hijacked connections (attach, exec) are never released: drop the closed ones
            # now, not only at the cap (each kept its transport, protocol and last request)
            conns.difference_update([t for t in conns if t.is_closing()])
        cap = self.max_connections_per_peer
        if cap and len(conns) >= cap:
            return False
        conns.add(transport)
        return True

    def release(self, peer: tuple[str, Any], transport: Any) -> None:
        conns = self.open.get(peer)
        if conns is not None:
            conns.discard(transport)
            if not conns:
                del self.open[peer]


def is_streamed(request: web.Request) -> bool:
    """A body the handler streams (a tar, or a hijacked connection's raw stdin), not JSON."""
    if request.get("route") in STREAMED_BODY_ROUTES:
        return True
    is_json = request.content_type == "application/json" or request.content_type.endswith("+json")
    if "Upgrade" in request.headers and not is_json:
        return True
    return "Content-Type" in request.headers and request.content_type in BINARY_TYPES


def peer_key(transport: Any) -> tuple[str, Any]:
    """Who a connection is from, for the per-peer cap: ``("uid", N)`` on a Unix socket,
    ``("ip", address)`` on TCP."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family == socket.AF_UNIX:
        try:
            _, uid, _ = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                            struct.calcsize("3i")))
            return ("uid", uid)
        except OSError:
            return ("uid", None)
    peername = transport.get_extra_info("peername")
    if isinstance(peername, (tuple, list)) and peername:
        return ("ip", peername[0])
    return ("peer", str(peername))


def _raw_response(status: int, reason: str, message: str) -> bytes:
    body = json.dumps({"message": message}).encode() + b"\n"
    return (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body


class LimitedRequestHandler(RequestHandler):
    """aiohttp's connection handler with the header timeout and the per-peer count."""

    def __init__(self, manager: Server, *, limits: Limits, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self.limits = limits
        self.peer: tuple[str, Any] | None = None
        self.counted: Any = None  # the transport counted for ``peer``
        self.over_cap = False
        self._header_timer: asyncio.TimerHandle | None = None
        self.peer_info: Any = None  # the middleware's Peer for this connection (it cannot change)
        self.fast_tasks: set[asyncio.Task[None]] = set()  # fast-path answers waiting on a hook

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = peer_key(transport)
        if self.limits.acquire(peer, transport):
            self.peer, self.counted = peer, transport
        else:
            self.over_cap = True  # answered 429 by the middleware, then closed
        super().connection_made(transport)
        fast = getattr(self._manager, "fast", None)
        if fast is not None and self._parser is not None:
            from .fastpath import FastParser

            self._parser = FastParser(self._parser, self, fast)  # type: ignore[assignment]  # duck-typed
        self._arm_header_timer()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._cancel_header_timer()
        if self.peer is not None:
            self.limits.release(self.peer, self.counted)
            self.peer = self.counted = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        idle = self._waiter is not None and not self._waiter.done() and not self._upgraded
        before = self._request_count
        super().data_received(data)
        if self._request_count != before:
            self._cancel_header_timer()
            if not data.endswith(b"\r\n\r\n") and (not self._messages or self._messages[-1][1] is EMPTY_PAYLOAD):
                # a bodiless request and the start of the next head in one write: that head
                # is timed from now (else it could wait until the idle timeout)
                self._arm_header_timer()
        elif idle and data and self._header_timer is None:
            # the first bytes of the next request on a kept-alive connection, not a whole head
            # yet (a whole one, the common case, needs no timer: arming one costs as much as a ping)
            self._arm_header_timer()

    def fast_answered(self) -> None:
        """The fast path (:mod:`dockyard.api.fastpath`) answered a request: restart the
        keep-alive clock as aiohttp does after each response."""
        if self._keepalive_timeout > 0 and not self._force_close:
            close_time = self._loop.time() + self._keepalive_timeout
            self._next_keepalive_close_time = close_time
            if self._keepalive_handle is None:
                self._keepalive_handle = self._loop.call_at(close_time, self._process_keepalive)

    def _arm_header_timer(self) -> None:
        if self.limits.header_timeout and self._header_timer is None:
            self._header_timer = self._loop.call_later(self.limits.header_timeout, self._header_timed_out)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timed_out(self) -> None:
        self._header_timer = None
        if self.transport is None or self._force_close or self._current_request is not None or self._messages:
            return
        self.transport.write(_raw_response(
            408, "Request Timeout",
            f"the request headers were not received within {self.limits.header_timeout:g}s "
            "(api-header-timeout)"))
        self.force_close()


class LimitedServer(Server):
    limits: Limits
    fast: Any = None  # dockyard.api.fastpath.FastPath, when the app allows it

    def __call__(self) -> RequestHandler:
        return LimitedRequestHandler(self, loop=self._loop, limits=self.limits, **self._kwargs)


class LimitedAppRunner(web.AppRunner):
    """``web.AppRunner`` whose connections are :class:`LimitedRequestHandler`\\ s."""

    def __init__(self, app: web.Application, *, limits: Limits, **kwargs: Any) -> None:
        kwargs.setdefault("keepalive_timeout", limits.idle_timeout or 365 * 86400.0)
        super().__init__(app, **kwargs)
        self.limits = limits

    async def setup(self) -> None:
        await super().setup()
        from .janitor import MemoryJanitor

        self.janitor = MemoryJanitor(lambda: self.server.requests_count if self.server is not None else 0)
        self.janitor.start()

    async def cleanup(self) -> None:
        janitor = getattr(self, "janitor", None)
        if janitor is not None:
            janitor.stop()
        await super().cleanup()

    async def _make_server(self) -> Server:
        server = await super()._make_server()
        server.__class__ = LimitedServer  # the same object: only how it makes handlers changes
        server.limits = self.limits  # type: ignore[attr-defined]
        server.fast = self.fast_path()  # type: ignore[attr-defined]
        return server

    def fast_path(self) -> Any:
        from .fastpath import FastPath

        make = self.app.get(FAST_PATH) if FAST_PATH in self.app else None
        if make is None or self._kwargs.get("access_log", access_logger) is not None:
            return None  # an access log (dockyardd --debug) sees every request: no fast path
        fast = make()
        return fast if fast is not None and FastPath.usable(self.app, fast.middleware) else None


def over_cap_response(request: web.Request) -> web.Response | None:
    """429 for a request on a connection over its peer's cap (and the connection closes)."""
    protocol = request.protocol
    if not getattr(protocol, "over_cap", False):
        return None
    limits: Limits = protocol.limits  # type: ignore[union-attr, attr-defined]
    response = web.json_response(
        {"message": f"too many connections from this client: at most {limits.max_connections_per_peer} "
                    "at once per user (Unix socket) or address (TCP) (api-max-connections-per-peer)"},
        status=429)
    response.force_close()
    return response


def body_limit(request: web.Request) -> int:
    """The JSON body limit for this request's app (0: none)."""
    protocol = request.protocol
    limits = getattr(protocol, "limits", None)
    if limits is None:
        from .util import DAEMON

        daemon = request.app.get(DAEMON) if DAEMON in request.app else None
        config = getattr(daemon, "config", None)
        return int(getattr(config, "api_max_json_body", DEFAULT_MAX_JSON_BODY))
    return limits.max_json_body


def too_large_message(limit: int) -> str:
    size = f"{limit >> 20} MiB" if limit % (1 << 20) == 0 else f"{limit} bytes"
    return f"request body is larger than {size}, the limit for JSON requests (api-max-json-body)"
