"""Published ports: a listening socket per port in the daemon (it reserves the port, and is the
userland proxy), plus DNAT rules in the engine's own nftables table for what the kernel can
forward by itself.

Why both (host-facts.md §4): DNAT is the fast path (kernel only; the proxy reaches ~60 % of
it), but a packet from 127.0.0.1 can only be DNATed out to a container when the outgoing
interface has ``route_localnet``. The bridge driver turns that on for its own bridges only
(never host-wide), together with a drop of 127/8 arriving from them (firewall.py), as dockerd
does without its userland proxy; it then makes the publisher with ``loopback_dnat``. So:

- traffic from other hosts (prerouting) and from the host to one of its own addresses
  (output; 127.0.0.1 too with ``loopback_dnat``, masqueraded to the bridge's address on the
  way out) is DNATed straight to the container;
- traffic from containers on the engine's own bridges (no hairpin or inter-network
  forwarding to reason about), and to 127.0.0.1 without ``loopback_dnat``, reaches the
  listening socket and is proxied by one asyncio server per port in the daemon process.

The listening socket is opened first: a port in use fails there, before any rule exists.
State (which container has which ports, to which address) is kept in one JSON file so a
restarted daemon reopens the proxies and rewrites the rules for containers that kept running.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import logging
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from dockyard.drivers.network import PortBinding
from dockyard.tasks import spawn
from dockyard.errors import Conflict, DockyardError
from dockyard.store import read_json, write_json

from dockyard.nftables import Nft

log = logging.getLogger("dockyard.net_bridge.ports")

UDP_IDLE_SECONDS = 60.0


# -- nftables ---------------------------------------------------------------------------------


def ruleset(table: str, entries: Iterable["Published"], skip_ifnames: Iterable[str], loopback: bool = False) -> str:
    """The whole port table, written in one atomic batch (``add`` then ``delete`` makes the
    batch work whether or not the table exists). ``loopback``: DNAT 127/8 too (the bridges
    have ``route_localnet``), with a masquerade so replies come back to the bridge address."""
    entries = list(entries)
    v6 = [p for p in entries if ":" in p.target_ip]
    lines = [f"add table ip {table}", f"delete table ip {table}", f"add table ip6 {table}", f"delete table ip6 {table}"]
    if v6:
        lines.append(_ruleset6(table, v6, skip_ifnames))
    rules = []
    for p in entries:
        if ":" in p.target_ip or ":" in p.host_ip:
            continue  # IPv6 (the ip6 table), or an IPv6 host address proxied to the IPv4 target
        match = f"ip daddr {p.host_ip} " if p.host_ip else ""
        rules.append(f"{match}{p.proto} dport {p.host_port} dnat to {p.target_ip}:{p.port}")
    if not rules:
        return "\n".join(lines) + "\n"
    skip_ifnames = list(skip_ifnames)
    skip = "".join(f'iifname != "{name}" ' for name in skip_ifnames)
    local = "" if loopback else "ip daddr != 127.0.0.0/8 "
    masquerade = [f'    ip saddr 127.0.0.0/8 oifname "{name}" masquerade' for name in skip_ifnames] if loopback else []
    lines += [
        f"table ip {table} {{",
        "  chain ports {",
        *(f"    {r}" for r in rules),
        "  }",
        "  chain prerouting {",
        "    type nat hook prerouting priority dstnat; policy accept;",
        f"    {skip}fib daddr type local jump ports",
        "  }",
        "  chain output {",
        "    type nat hook output priority -100; policy accept;",  # nft 1.0.6 rejects dstnat here
        f"    {local}fib daddr type local jump ports",
        "  }",
        *(["  chain postrouting {", "    type nat hook postrouting priority srcnat; policy accept;", *masquerade,
            "  }"] if masquerade else []),
        "}",
    ]
    return "\n".join(lines) + "\n"


def _ruleset6(table: str, entries: list["Published"], skip_ifnames: Iterable[str]) -> str:
    """The IPv6 half: DNAT to containers' IPv6 addresses, except for ``::1`` (no
    ``route_localnet`` in IPv6: the userland proxy serves loopback) and traffic from our bridges."""
    rules = []
    for p in entries:
        match = f"ip6 daddr {p.host_ip} " if p.host_ip and p.host_ip != "::" else ""
        rules.append(f"{match}{p.proto} dport {p.host_port} dnat to [{p.target_ip}]:{p.port}")
    skip = "".join(f'iifname != "{name}" ' for name in skip_ifnames)
    return "\n".join([
        f"table ip6 {table} {{",
        "  chain ports {",
        *(f"    {r}" for r in rules),
        "  }",
        "  chain prerouting {",
        "    type nat hook prerouting priority dstnat; policy accept;",
        f"    {skip}fib daddr type local jump ports",
        "  }",
        "  chain output {",
        "    type nat hook output priority -100; policy accept;",
        "    ip6 daddr != ::1 fib daddr type local jump ports",
        "  }",
        "}"])


# -- userland proxy -----------------------------------------------------------------------------

_tasks: set[asyncio.Future[Any]] = set()


def _spawn(coro: Any) -> None:
    """A task that is kept referenced until done (the loop only keeps weak references);
    its exception is logged (dockyard.tasks.spawn), never left unobserved."""
    task = spawn(coro, "userland proxy")
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)



class _Pipe(asyncio.Protocol):
    """One direction-pair end: what arrives here is written to ``peer``; half-closes are passed
    on, and a full write buffer on one side pauses reading on the other."""

    def __init__(self) -> None:
        self.transport: Any = None
        self.peer: "_Pipe | None" = None
        self.eof = False
        self.early: list[bytes] = []  # what arrived before the peer was connected

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.peer is not None:
            self.peer.transport.write(data)
        else:
            self.early.append(data)

    def eof_received(self) -> bool:
        self.eof = True
        peer = self.peer
        if peer is None:
            return True  # passed on by link()
        if peer.eof:
            self._close_both()
            return False
        if peer.transport.can_write_eof():
            peer.transport.write_eof()
        return True

    def link(self, peer: "_Pipe") -> None:
        self.peer, peer.peer = peer, self
        for data in self.early:
            peer.transport.write(data)
        self.early.clear()
        if self.eof and peer.transport.can_write_eof():
            peer.transport.write_eof()

    def connection_lost(self, exc: Exception | None) -> None:
        self._close_both()

    def pause_writing(self) -> None:
        if self.peer is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None:
            self.peer.transport.resume_reading()

    def _close_both(self) -> None:
        self.transport.close()
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.close()


class _Accepted(_Pipe):
    """A client of the published port: reading is paused until the container side is
    connected (asyncio may still deliver a first read: :meth:`_Pipe.link` passes it on)."""

    def __init__(self, target: tuple[str, int], conns: "set[_Accepted]") -> None:
        super().__init__()
        self.target = target
        self.conns = conns  # the listener's open connections, closed with it

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self.conns.add(self)
        transport.pause_reading()
        _spawn(self._connect())

    def connection_lost(self, exc: Exception | None) -> None:
        self.conns.discard(self)
        super().connection_lost(exc)

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, upstream = await loop.create_connection(_Pipe, *self.target)
        except OSError:
            self.transport.close()
            return
        if self.transport.is_closing():
            upstream.transport.close()
            return
        self.link(upstream)
        self.transport.resume_reading()


class _UDPReply(asyncio.DatagramProtocol):
    def __init__(self, front: "_UDPFront", client: tuple[str, int]) -> None:
        self.front, self.client = front, client
        self.transport: Any = None
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.touch()

    def touch(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer = asyncio.get_running_loop().call_later(UDP_IDLE_SECONDS, self.transport.close)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.touch()
        if self.front.transport is not None and not self.front.transport.is_closing():
            self.front.transport.sendto(data, self.client)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        if self.front.clients.get(self.client) is self:
            del self.front.clients[self.client]


class _UDPFront(asyncio.DatagramProtocol):
    """The published UDP port: one connected socket to the container per client address, so
    replies find their way back; idle flows are closed after a minute."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.transport: Any = None
        self.clients: dict[Any, _UDPReply] = {}
        self.pending: dict[Any, list[bytes]] = {}

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        flow = self.clients.get(addr)
        if flow is not None and not flow.transport.is_closing():
            flow.touch()
            flow.transport.sendto(data)
            return
        if addr in self.pending:
            self.pending[addr].append(data)
            return
        self.pending[addr] = [data]
        _spawn(self._open(addr))

    async def _open(self, addr: Any) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, flow = await loop.create_datagram_endpoint(lambda: _UDPReply(self, addr), remote_addr=self.target)
        except OSError:
            self.pending.pop(addr, None)
            return
        self.clients[addr] = flow
        for data in self.pending.pop(addr, []):
            flow.transport.sendto(data)

    def close(self) -> None:
        for flow in list(self.clients.values()):
            flow.transport.close()
        if self.transport is not None:
            self.transport.close()


def reserve(proto: str, host_ip: str, first: int, last: int = 0) -> socket.socket:
    """A bound (and for TCP listening) socket on the host port: the reservation. ``first`` 0
    lets the kernel pick a free port; ``last`` > ``first`` tries each port of the range."""
    ports = range(first, max(first, last) + 1)
    for port in ports:
        kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
        family = socket.AF_INET6 if ":" in host_ip else socket.AF_INET
        sock = socket.socket(family, kind)
        try:
            if family == socket.AF_INET6:  # "::" is IPv6 only: 0.0.0.0 has a socket of its own
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if proto == "tcp":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a TIME_WAIT is no conflict
            sock.bind((host_ip or "0.0.0.0", port))
            if proto == "tcp":
                sock.listen(1024)
            sock.setblocking(False)
            return sock
        except OSError as exc:
            sock.close()
            if exc.errno != errno.EADDRINUSE or port == ports[-1]:
                shown = f"[{host_ip}]" if ":" in host_ip else host_ip or "0.0.0.0"
                where = f"{shown}:{first}" + (f"-{last}" if last > first else "")
                reason = "port is already allocated" if exc.errno == errno.EADDRINUSE else exc.strerror
                raise Conflict(f"Bind for {where} failed: {reason}") from None
    raise AssertionError("unreachable")


@dataclass
class Published:
    """One port as published: where it listens on the host and where it goes."""

    proto: str
    port: int
    host_ip: str
    host_port: int
    target_ip: str

    def binding(self) -> PortBinding:
        return PortBinding(self.port, self.proto, self.host_ip, self.host_port)


class _Listener:
    """The proxy of one published port. Opened and closed on the daemon's event loop; the
    socket is already bound (and listening) before, so nothing that arrives meanwhile is lost."""

    def __init__(self, p: Published, sock: socket.socket) -> None:
        self.p, self.sock = p, sock
        self.closer: Any = None
        self.closed = False
        self.conns: set[_Accepted] = set()

    async def open(self) -> None:
        if self.closed:
            return
        loop = asyncio.get_running_loop()
        target = (self.p.target_ip, self.p.port)
        try:
            if self.p.proto == "tcp":
                closer: Any = await loop.create_server(lambda: _Accepted(target, self.conns), sock=self.sock)
            else:
                _, closer = await loop.create_datagram_endpoint(lambda: _UDPFront(target), sock=self.sock)
        except OSError as exc:
            log.warning("proxy for %s/%s: %s", self.p.host_port, self.p.proto, exc)
            self.sock.close()
            return
        if self.closed:
            closer.close()
        else:
            self.closer = closer

    def close(self) -> None:
        """Release the port now (not at the loop's next turn): a restart may bind it again.
        Proxied connections end too (their container is going away), as docker-proxy's do."""
        self.closed = True
        if self.closer is not None:
            self.closer.close()
            self.closer = None
        self.sock.close()
        for conn in list(self.conns):
            conn._close_both()


class PortPublisher:
    """Every published port of one daemon: its proxies, its nft table, its state file.

    The methods are synchronous and thread-safe, as the network driver's are (the networks
    service calls drivers in worker threads): sockets are bound and rules written in the
    calling thread, and the proxies are handed to the daemon's event loop (``loop``, by default
    the one running when the publisher is made).

    ``table`` must be this daemon's own (several daemons may share a host); ``skip_ifnames``
    are the engine's bridge interfaces (nft wildcards allowed): their traffic goes through
    the proxy rather than DNAT. ``loopback_dnat``: those bridges have ``route_localnet`` and
    drop 127/8 from containers, so traffic to 127.0.0.1 is DNATed too (the proxy then only
    holds the port)."""

    def __init__(self, state_file: Path, table: str, skip_ifnames: Iterable[str] = (), nft: Any = None,
                 loop: asyncio.AbstractEventLoop | None = None, loopback_dnat: bool = False) -> None:
        self.state_file = state_file
        self.table = table
        self.skip_ifnames = list(skip_ifnames)
        self.loopback_dnat = loopback_dnat
        self.nft = nft if nft is not None else Nft()
        if loop is None:
            with contextlib.suppress(RuntimeError):
                loop = asyncio.get_running_loop()
        self.loop = loop
        self.lock = threading.RLock()
        self.published: dict[str, list[Published]] = {}
        self.listeners: dict[str, list[_Listener]] = {}

    def _all(self) -> list[Published]:
        return [p for ports in self.published.values() for p in ports]

    def _sync(self) -> None:
        self.nft.run(ruleset(self.table, self._all(), self.skip_ifnames, self.loopback_dnat))
        write_json(self.state_file, {cid: [vars(p) for p in ports] for cid, ports in self.published.items()},
                   sync=False)

    def no_loopback_dnat(self) -> None:
        """A bridge could not get ``route_localnet``: 127.0.0.1 goes through the proxy again."""
        with self.lock:
            if self.loopback_dnat:
                self.loopback_dnat = False
                self._sync()

    def _on_loop(self, fn: Callable[[], Any]) -> None:
        """Run ``fn`` on the event loop and wait for it (or right here on the loop's thread)."""
        loop = self.loop
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        if loop is None or here is loop or loop.is_closed():
            fn()
            return
        done: concurrent.futures.Future[None] = concurrent.futures.Future()

        def call() -> None:
            try:
                fn()
                done.set_result(None)
            except BaseException as exc:
                done.set_exception(exc)

        loop.call_soon_threadsafe(call)
        done.result()

    def _start(self, listeners: list[_Listener]) -> None:
        def go() -> None:
            for listener in listeners:
                _spawn(listener.open())

        self._on_loop(go)

    def _stop(self, listeners: list[_Listener]) -> None:
        def close_all() -> None:
            for listener in listeners:
                listener.close()

        if listeners:
            self._on_loop(close_all)

    def publish(self, cid: str, target_ip: str, bindings: list[PortBinding], target_ip6: str = "") -> list[PortBinding]:
        """Reserve and publish ``bindings`` of one container whose address is ``target_ip``:
        all of them (returned with the host ports used), or none and a Conflict.

        With ``target_ip6`` (the container's IPv6 address) a binding to every address is
        published on ``::`` too (same port), as Docker does on IPv6 networks, and DNATed to it.
        A binding to an IPv6 host address (``-p [::1]:8080:80``) goes to ``target_ip6``, or
        through the proxy to ``target_ip`` when the container has no IPv6."""
        self.unpublish(cid)
        if not bindings:
            return []
        with self.lock:
            listeners: list[_Listener] = []
            try:
                for b in bindings:
                    host_ip = "" if b.host_ip in ("", "0.0.0.0") else b.host_ip
                    sock = reserve(b.protocol, host_ip, b.host_port, b.host_port_end)
                    target = (target_ip6 or target_ip) if ":" in host_ip else target_ip
                    p = Published(b.protocol, b.container_port, host_ip, sock.getsockname()[1], target)
                    listeners.append(_Listener(p, sock))
                    if not host_ip and target_ip6:
                        sock6 = reserve(b.protocol, "::", p.host_port)
                        listeners.append(_Listener(Published(b.protocol, b.container_port, "::", p.host_port,
                                                             target_ip6), sock6))
                self.published[cid] = [listener.p for listener in listeners]
                self._sync()
            except BaseException:
                for listener in listeners:
                    listener.sock.close()
                if self.published.pop(cid, None) is not None:
                    with contextlib.suppress(Exception):
                        self._sync()
                raise
            self.listeners[cid] = listeners
        self._start(listeners)
        return [listener.p.binding() for listener in listeners]

    def unpublish(self, cid: str) -> None:
        with self.lock:
            listeners = self.listeners.pop(cid, [])
            if self.published.pop(cid, None) is not None:
                self._sync()
        self._stop(listeners)

    def restore(self, targets: dict[str, set[str]]) -> None:
        """Daemon start: reopen the proxies of containers that kept running and rewrite the
        rules. ``targets`` maps each container with a network endpoint to its addresses; saved
        ports of other containers, or to an address the container no longer has, are dropped."""
        saved = read_json(self.state_file, {}) or {}
        started: list[_Listener] = []
        with self.lock:
            for cid, ports in saved.items():
                if cid in self.published:
                    continue
                kept = []
                for data in ports:
                    p = Published(**data)
                    if p.target_ip not in targets.get(cid, ()):
                        continue
                    try:
                        sock = reserve(p.proto, p.host_ip, p.host_port)
                    except DockyardError as exc:
                        log.warning("container %s: cannot reopen port %s/%s: %s", cid[:12], p.host_port, p.proto, exc)
                        continue
                    kept.append(_Listener(p, sock))
                if kept:
                    self.published[cid] = [listener.p for listener in kept]
                    self.listeners[cid] = kept
                    started += kept
                else:
                    log.info("dropping published ports of container %s", cid[:12])
            self._sync()
        self._start(started)

    def ports_of(self, cid: str) -> list[PortBinding]:
        with self.lock:
            return [p.binding() for p in self.published.get(cid, [])]

    def close(self) -> None:
        """Daemon shutdown with containers left running: close the proxies; the rules stay
        (:meth:`restore` at the next start rewrites them and reopens the proxies)."""
        with self.lock:
            listeners = [listener for ls in self.listeners.values() for listener in ls]
            self.listeners.clear()
        self._stop(listeners)

    def remove_all(self) -> None:
        """Drop every port and the table (no container is left running)."""
        self.close()
        with self.lock:
            self.published.clear()
            self._sync()
