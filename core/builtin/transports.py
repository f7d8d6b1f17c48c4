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

from ..http import web

from ..config import DEFAULT_UNIX_SOCKET, DaemonConfig
from ..errors import ConfigError

log = logging.getLogger("dockyard.transports")

# listen(2) backlog of every API socket, dockerd's value: a burst of clients (200 at once)
# queues instead of failing with EAGAIN while the loop is busy. The kernel caps it at
# net.core.somaxconn (4096 on current kernels). A site's default is 128.
LISTEN_BACKLOG = 4096


class UnixTransport:
    """Listens on a Unix socket, mode 0660, owned by root and the configured group."""

    scheme = "unix"
    #: optional contracts (dockyard.drivers.contracts): none beyond the base Protocol
    capabilities: frozenset[str] = frozenset()

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
    #: optional contracts (dockyard.drivers.contracts): none beyond the base Protocol
    capabilities: frozenset[str] = frozenset()

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


SD_LISTEN_FDS_START = 3


def listen_fds(unset_environment: bool = True) -> list[tuple[int, str]]:
    """``sd_listen_fds_with_names(3)``: the sockets a service manager passed us (fd 3 on), each
    with its name from ``LISTEN_FDNAMES`` ("unknown" without one). Only when ``LISTEN_PID`` is
    our pid; the variables are unset after reading (as ``sd_listen_fds(1)``), so children
    (shims, containers) never see them. The fds get close-on-exec."""
    env = os.environ
    try:
        pid = int(env.get("LISTEN_PID", ""))
        count = int(env.get("LISTEN_FDS", ""))
    except ValueError:
        pid, count = 0, 0
    names = env.get("LISTEN_FDNAMES", "").split(":") if env.get("LISTEN_FDNAMES") else []
    if unset_environment:
        for var in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
            env.pop(var, None)
    if pid != os.getpid() or count <= 0:
        return []
    fds = []
    for i in range(count):
        fd = SD_LISTEN_FDS_START + i
        os.set_inheritable(fd, False)
        fds.append((fd, names[i] if i < len(names) and names[i] else "unknown"))
    return fds


class FDTransport:
    """``fd://``: sockets passed by systemd socket activation (``dockyard.socket``), as dockerd's
    ``-H fd://``. ``fd://`` serves every passed socket; ``fd://NAME`` the one named NAME in
    ``LISTEN_FDNAMES`` (the unit's ``FileDescriptorName=``); ``fd://N`` (digits) fd N, as dockerd."""

    scheme = "fd"
    #: optional contracts (dockyard.drivers.contracts): none beyond the base Protocol
    capabilities: frozenset[str] = frozenset()

    def __init__(self, config: dict[str, Any], root: Path, state: Path) -> None:
        if config:
            raise ConfigError(f"plugins.fd: unknown option(s): {', '.join(config)}")
        self.fds = listen_fds()
        self.taken: set[int] = set()
        self.sockets: list[socket.socket] = []

    async def site(self, runner: web.AppRunner, url: str, daemon: DaemonConfig) -> web.BaseSite:
        if not self.fds:
            raise ConfigError(f"{url}: no sockets were passed to the daemon (LISTEN_FDS unset or for "
                              "another process): -H fd:// is for socket activation (dockyard.socket)")
        want = url.split("://", 1)[1].strip("/")
        if not want or want == "*":
            chosen = [fd for fd, _ in self.fds if fd not in self.taken]
        elif want.isdigit():
            chosen = [fd for fd, _ in self.fds if fd == int(want)]
        else:
            chosen = [fd for fd, name in self.fds if name == want]
        if not chosen:
            have = ", ".join(f"{fd}={name}" for fd, name in self.fds)
            raise ConfigError(f"{url}: no such passed socket (passed: {have})")
        first: web.BaseSite | None = None
        for fd in chosen:
            if fd in self.taken:
                continue
            sock = socket.socket(fileno=fd)
            if sock.type != socket.SOCK_STREAM:
                sock.detach()
                raise ConfigError(f"{url}: passed fd {fd} is not a stream socket")
            sock.setblocking(False)
            site = web.SockSite(runner, sock, backlog=LISTEN_BACKLOG)
            await site.start()
            self.taken.add(fd)
            self.sockets.append(sock)
            log.info("API listening on passed socket fd %d (%s)", fd, site.name)
            first = first or site
        if first is None:
            raise ConfigError(f"{url}: the passed socket(s) {chosen} are already served by another -H fd://")
        return first

    async def close(self) -> None:
        """The sockets belong to the service manager: never unlink their paths."""
        for sock in self.sockets:
            try:
                sock.close()
            except OSError:
                pass
        self.sockets.clear()
