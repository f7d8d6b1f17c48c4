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

import socket
import struct
from dataclasses import dataclass, field
from typing import Any

from ..http import web
from ..http.server import error_bytes

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

    peer_of = staticmethod(lambda transport: peer_key(transport))

    def timeout_response(self) -> bytes:
        """The 408 for a head not complete within ``header_timeout``."""
        return error_bytes(408, "Request Timeout",
                             f"the request headers were not received within {self.header_timeout:g}s "
                             "(api-header-timeout)")

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


class LimitedAppRunner(web.AppRunner):
    """``web.AppRunner`` whose connections (:class:`dockyard.http.server.HttpProtocol`) keep
    these limits and take the app's fast path (none with an access log: ``--debug`` sees
    every request), with the memory janitor running while it serves."""

    def __init__(self, app: web.Application, *, limits: Limits, **kwargs: Any) -> None:
        kwargs.setdefault("keepalive_timeout", limits.idle_timeout or 365 * 86400.0)
        super().__init__(app, limits=limits, **kwargs)
        self.fast_path_factory = self.fast_path

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

    def fast_path(self) -> Any:
        from .fastpath import FastPath

        make = self.app.get(FAST_PATH) if FAST_PATH in self.app else None
        if make is None or self.access_log is not None:
            return None
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
