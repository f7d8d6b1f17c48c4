"""Transport drivers: how the daemon listens (``dockyard.transports``, keyed by URL scheme)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:  # the CLI imports this package too: keep the server out of its start-up
    from ..http import web

    from ..config import DaemonConfig


@runtime_checkable
class Transport(Protocol):
    """Turns one ``-H`` URL into a listening site (:mod:`dockyard.http.web`: ``UnixSite``,
    ``TCPSite`` with ``ssl_context``, ``SockSite``, or a ``BaseSite`` of its own).

    The transport for a scheme (``unix``, ``tcp``, ``tls``) is constructed once, like any
    driver, with its ``[plugins.<scheme>]`` table. ``site()`` is awaited once per URL with
    that scheme after the app runner is set up; it must return a started ``web.BaseSite``
    and raise :class:`dockyard.errors.ConfigError` for an address it refuses. ``daemon`` is
    the daemon's config (socket group, ``insecure_tcp``...). ``close()`` runs at shutdown and
    removes what ``site()`` left on disk (e.g. the socket file).
    """

    async def site(self, runner: "web.AppRunner", url: str, daemon: "DaemonConfig") -> "web.BaseSite": ...

    async def close(self) -> None: ...
