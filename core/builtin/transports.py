"""The built-in transports: ``unix://`` and ``tcp://`` (plain).

Each is an entry point in ``dockyard.transports`` named by its URL scheme; the TLS transport
comes from the ``dockyard-auth-tls`` distribution the same way.
"""

from __future__ import annotations

import grp
import ipaddress
import logging
import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from ..config import DEFAULT_UNIX_SOCKET, DaemonConfig
from ..errors import ConfigError

log = logging.getLogger("dockyard.transports")

# listen(2) backlog of every API socket, dockerd's value: a burst of clients (200 at once)
# queues instead of failing with EAGAIN while the loop is busy. The kernel caps it at
# net.core.somaxconn (4096 on current kernels). aiohttp's default is 128.
LISTEN_BACKLOG = 4096


class UnixTransport:
    """Listens on a Unix socket, mode 0660, owned by root and the configured group."""

    scheme = "unix"

    def __init__(self, config: dict[str, Any], root: Path, state: Path) -> None:
        if config:
            raise ConfigError(f"plugins.unix: unknown option(s): {', '.join(config)}")
        self.paths: list[tuple[Path, int]] = []

    async def site(self, runner: web.AppRunner, url: str, daemon: DaemonConfig) -> web.BaseSite:
        path = Path(urlsplit(url).path or DEFAULT_UNIX_SOCKET)
        gid = self._group_id(daemon.group)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() or path.is_symlink():
            if _is_listening(path):
                raise ConfigError(f"{path} is in use by another process (is another daemon running?)")
            path.unlink()
        site = web.UnixSite(runner, str(path), backlog=LISTEN_BACKLOG)
        await site.start()
        os.chmod(path, 0o660)
        os.chown(path, 0, gid)
        self.paths.append((path, path.stat().st_ino))
        return site

    @staticmethod
    def _group_id(name: str | None) -> int:
        if name is None:
            try:
                return grp.getgrnam("dockyard").gr_gid
            except KeyError:
                return 0
        try:
            return int(name) if name.isdigit() else grp.getgrnam(name).gr_gid
        except KeyError:
            raise ConfigError(f"group {name!r} not found (set -G/--group to an existing group)") from None

    async def close(self) -> None:
        """Remove our sockets, but never one a newer daemon has bound at the same path."""
        for path, inode in self.paths:
            try:
                if path.stat().st_ino == inode:
                    path.unlink()
            except FileNotFoundError:
                pass
        self.paths.clear()


def _is_listening(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(str(path))
            return True
        except OSError:
            return False


def parse_tcp(url: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(url if "://" in url else f"tcp://{url}")
    host = parts.hostname or "127.0.0.1"
    try:
        port = parts.port or default_port
    except ValueError:
        raise ConfigError(f"invalid port in {url!r}") from None
    return host, port


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class TCPTransport:
    """Plain HTTP on TCP: refused on a non-loopback address unless ``insecure-tcp`` is set."""

    scheme = "tcp"

    def __init__(self, config: dict[str, Any], root: Path, state: Path) -> None:
        if config:
            raise ConfigError(f"plugins.tcp: unknown option(s): {', '.join(config)}")

    async def site(self, runner: web.AppRunner, url: str, daemon: DaemonConfig) -> web.BaseSite:
        host, port = parse_tcp(url, 2375)
        if not is_loopback(host):
            if not daemon.insecure_tcp:
                raise ConfigError(
                    f"refusing to serve plain TCP on {host}:{port}: anyone who can reach it is root "
                    "on this host. Use TLS (-H tcp://... with --tlsverify), a loopback address, "
                    "or pass --insecure-tcp if you really mean it"
                )
            log.warning("serving the API WITHOUT TLS on %s:%s", host, port)
        site = web.TCPSite(runner, host, port, reuse_address=True, backlog=LISTEN_BACKLOG)
        await site.start()
        return site

    async def close(self) -> None:
        pass
