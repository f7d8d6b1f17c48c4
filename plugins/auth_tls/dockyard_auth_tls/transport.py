"""The ``tls`` transport: HTTPS on TCP, as dockerd's ``--tls`` / ``--tlsverify``.

Selected for ``tls://host:port`` URLs, and for ``tcp://host:port`` when the daemon runs with
``--tls`` or ``--tlsverify`` (``dockyard.daemon``). Certificates come from the daemon's
``tlscacert`` / ``tlscert`` / ``tlskey`` settings. With ``tlsverify`` a client must present a
certificate signed by ``tlscacert``; its subject becomes the principal (``dockyard_auth_tls.hooks``).
TLS 1.2 is the minimum. Unlike plain TCP, non-loopback addresses are allowed.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from asyncio import sslproto
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dockyard.http import web

from dockyard.builtin.transports import LISTEN_BACKLOG, parse_tcp
from dockyard.errors import ConfigError

if TYPE_CHECKING:
    from dockyard.config import DaemonConfig

log = logging.getLogger("dockyard.transports.tls")

DEFAULT_PORT = 2376


def server_context(cert: Path, key: Path, cacert: Path | None, verify: bool) -> ssl.SSLContext:
    """An SSL context for the server; ``verify`` requires client certificates from ``cacert``."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(str(cert), str(key))
    except FileNotFoundError as exc:
        raise ConfigError(f"TLS: cannot read server certificate or key ({exc.filename or cert}): "
                          "set --tlscert/--tlskey (see `dockyard tls init`)") from None
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"TLS: bad server certificate {cert} or key {key}: {exc}") from None
    if verify:
        if cacert is None:
            raise ConfigError("TLS: --tlsverify needs --tlscacert")
        try:
            ctx.load_verify_locations(cafile=str(cacert))
        except FileNotFoundError:
            raise ConfigError(f"TLS: CA certificate {cacert} not found (set --tlscacert)") from None
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(f"TLS: bad CA certificate {cacert}: {exc}") from None
        ctx.verify_mode = ssl.CERT_REQUIRED
    else:
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


class HalfCloseSSLProtocol(sslproto.SSLProtocol):
    """asyncio's server-side TLS, except that the client may end only its own direction, as on
    plain TCP.

    The docker CLI ends the stdin of a hijacked (attach, exec) connection with a half-close and
    keeps reading the output: a TLS close_notify (Go's ``tls.Conn.CloseWrite``) or, in older
    clients, a ``shutdown(SHUT_WR)`` of the raw TCP connection. asyncio's SSLProtocol answers
    both by closing the whole connection, and ignores an application protocol that asks to keep
    it open. Here, when the application protocol's ``eof_received()`` returns true (the hijacked
    stream does), the connection stays open for writing until the application closes it;
    the HTTP connection protocol (``dockyard.http.server``) returns None and closes as before."""

    _half_open = False

    def _call_eof_received(self) -> None:
        if self._app_state != sslproto.AppProtocolState.STATE_CON_MADE:  # type: ignore[has-type]  # asyncio internals
            return
        self._app_state = sslproto.AppProtocolState.STATE_EOF
        try:
            self._half_open = bool(self._app_protocol.eof_received())  # type: ignore[attr-defined]
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Error calling eof_received()")

    def _start_shutdown(self) -> None:
        # after the peer's close_notify: shut down only once the application closes its side
        closed_by_app = self._app_transport is not None and self._app_transport._closed
        if self._half_open and not closed_by_app:
            return
        super()._start_shutdown()

    def eof_received(self):  # type: ignore[override]
        """TCP EOF from the peer."""
        if self._state == sslproto.SSLProtocolState.WRAPPED:
            if self._half_open:  # a close_notify came first; the TCP FIN adds nothing
                self._eof_received = True
                return True
            if self._app_state == sslproto.AppProtocolState.STATE_CON_MADE:
                self._eof_received = True
                self._call_eof_received()
                if self._half_open:
                    return True
        return super().eof_received()


def _handshake_done(waiter: asyncio.Future) -> None:
    if not waiter.cancelled() and waiter.exception() is not None:  # e.g. a client certificate refused
        log.debug("TLS handshake failed: %s", waiter.exception())


class TLSSite(web.TCPSite):
    """``dockyard.http.web.TCPSite`` with :class:`HalfCloseSSLProtocol` wrapping each connection
    (the runner's server makes the HTTP protocol inside it)."""

    async def start(self) -> None:
        await web.BaseSite.start(self)
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None and self._ssl_context is not None
        ctx = self._ssl_context

        def protocol() -> HalfCloseSSLProtocol:
            waiter = loop.create_future()
            waiter.add_done_callback(_handshake_done)
            return HalfCloseSSLProtocol(loop, server(), ctx, waiter, server_side=True,
                                        ssl_handshake_timeout=60)

        self._server = await loop.create_server(protocol, self._host, self._port, backlog=self._backlog,
                                                reuse_address=self._reuse_address, reuse_port=self._reuse_port)
        sockets = self._server.sockets
        if sockets:
            self.address = sockets[0].getsockname()


class TLSTransport:
    """HTTPS on TCP, with client certificate verification under ``--tlsverify``."""

    scheme = "tls"
    #: optional contracts (dockyard.drivers.contracts): none beyond the base Protocol
    capabilities: frozenset[str] = frozenset()

    def __init__(self, config: dict[str, Any], root: Path, state: Path) -> None:
        if config:
            raise ConfigError(f"plugins.tls: unknown option(s): {', '.join(config)} "
                              "(TLS is configured with tls, tlsverify, tlscacert, tlscert, tlskey)")

    async def site(self, runner: web.AppRunner, url: str, daemon: "DaemonConfig") -> web.BaseSite:
        host, port = parse_tcp(url, DEFAULT_PORT)
        verify = bool(getattr(daemon, "tlsverify", False))
        ctx = server_context(daemon.tlscert, daemon.tlskey, daemon.tlscacert, verify)
        if not verify:
            log.warning("serving TLS on %s:%s WITHOUT client certificate verification "
                        "(use --tlsverify): anyone who can reach it is root on this host", host, port)
        site = TLSSite(runner, host, port, ssl_context=ctx, reuse_address=True, backlog=LISTEN_BACKLOG)
        await site.start()
        return site

    async def close(self) -> None:
        pass
