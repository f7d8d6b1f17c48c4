"""The ``tls`` transport: HTTPS on TCP, as dockerd's ``--tls`` / ``--tlsverify``.

Selected for ``tls://host:port`` URLs, and for ``tcp://host:port`` when the daemon runs with
``--tls`` or ``--tlsverify`` (``dockyard.daemon``). Certificates come from the daemon's
``tlscacert`` / ``tlscert`` / ``tlskey`` settings. With ``tlsverify`` a client must present a
certificate signed by ``tlscacert``; its subject becomes the principal (``dockyard_auth_tls.hooks``).
TLS 1.2 is the minimum. Unlike plain TCP, non-loopback addresses are allowed.
"""

from __future__ import annotations

import logging
import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from dockyard.builtin.transports import parse_tcp
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


class TLSTransport:
    """HTTPS on TCP, with client certificate verification under ``--tlsverify``."""

    scheme = "tls"

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
        site = web.TCPSite(runner, host, port, ssl_context=ctx, reuse_address=True)
        await site.start()
        return site

    async def close(self) -> None:
        pass
