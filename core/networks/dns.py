"""The embedded DNS server of user-defined networks, with Docker's semantics.

One server per user network listens on UDP and TCP port 53 of the network's gateway address
(the host's end of the bridge) and containers on that network get ``nameserver <gateway>`` in
their resolv.conf. It answers the names of the network's containers (container name, network
aliases, short id) from a lookup function the network service gives it, and forwards every
other question to the host's resolvers from /etc/resolv.conf. Forwarding happens from the host
side, so a resolver on the host's loopback (systemd-resolved's 127.0.0.53) works too; with no
resolver at all the answer is a quick SERVFAIL.

The default bridge has no embedded DNS, as in Docker: its containers get a copy of the host's
resolv.conf without loopback entries.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import socket
import struct
from pathlib import Path
from typing import Any, Callable, Iterable

from dnslib import PTR, QTYPE, RCODE, RR, A, DNSError, DNSRecord

from ..containers import etcfiles

log = logging.getLogger("dockyard.dns")

TTL = 600  # Docker's embedded DNS answers with 600 s
FORWARD_TIMEOUT = 2.0
DNS_PORT = 53

#: name (lower case, no trailing dot) -> IPv4 addresses on this network, or None if unknown
Lookup = Callable[[str], "list[str] | None"]


def host_resolvers(path: str = "/etc/resolv.conf") -> list[str]:
    """The host's nameservers, loopback ones included (the daemon forwards from the host)."""
    servers = []
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            with contextlib.suppress(ValueError):
                servers.append(str(ipaddress.ip_address(parts[1].split("%")[0])))
    return servers


def container_resolv_conf(gateway: str, host_config: dict[str, Any], path: str = "/etc/resolv.conf") -> str:
    """A user-network container's resolv.conf: the embedded server (which forwards to the
    container's ``--dns`` servers, as Docker's does), plus the host's or the container's
    search and options lines."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        lines = []
    return etcfiles.format_resolv_conf([gateway], host_config, lines)


class Resolver:
    """Answers one query (wire format in, wire format out); shared by the UDP and TCP sides."""

    def __init__(self, lookup: Lookup, upstreams: Callable[[], list[str]] = host_resolvers,
                 client_upstreams: "Callable[[str], list[str] | None] | None" = None,
                 reverse: "Callable[[str], list[str] | None] | None" = None) -> None:
        self.lookup = lookup
        self.upstreams = upstreams
        self.client_upstreams = client_upstreams  # a container's own --dns servers, by its address
        self.reverse = reverse  # address -> names, for PTR questions about the network's addresses

    async def answer(self, data: bytes, client: str = "") -> bytes | None:
        try:
            query = DNSRecord.parse(data)
        except (DNSError, Exception):
            return None  # not DNS: drop, as a resolver does
        if not query.questions:
            reply = query.reply()
            reply.header.rcode = RCODE.FORMERR
            return reply.pack()
        q = query.questions[0]
        name = str(q.qname).rstrip(".").lower()
        if q.qtype == QTYPE.PTR and name.endswith(".in-addr.arpa") and self.reverse is not None:
            names = self.reverse(".".join(reversed(name[: -len(".in-addr.arpa")].split("."))))
            if names:
                reply = query.reply()
                for n in names:
                    reply.add_answer(RR(q.qname, QTYPE.PTR, rdata=PTR(n + "."), ttl=TTL))
                return reply.pack()
        addresses = self.lookup(name) if name else None
        if addresses is not None:
            reply = query.reply()
            if q.qtype in (QTYPE.A, QTYPE.ANY):
                for ip in addresses:
                    reply.add_answer(RR(q.qname, QTYPE.A, rdata=A(ip), ttl=TTL))
            # AAAA and others for a known name: an empty NOERROR answer (IPv4-only networks)
            return reply.pack()
        return await self.forward(query, data, client)

    async def forward(self, query: DNSRecord, data: bytes, client: str = "") -> bytes:
        servers = (self.client_upstreams(client) if self.client_upstreams and client else None) or self.upstreams()
        for server in servers:
            with contextlib.suppress(OSError, asyncio.TimeoutError):
                return await asyncio.wait_for(_udp_query(server, data, query.header.id), FORWARD_TIMEOUT)
        reply = query.reply()
        reply.header.rcode = RCODE.SERVFAIL
        return reply.pack()


class _OneShot(asyncio.DatagramProtocol):
    def __init__(self, qid: int) -> None:
        self.qid = qid
        self.done: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if len(data) >= 2 and struct.unpack("!H", data[:2])[0] == self.qid and not self.done.done():
            self.done.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.done.done():
            self.done.set_exception(exc)


async def _udp_query(server: "str | tuple[str, int]", data: bytes, qid: int) -> bytes:
    """Ask one upstream (an address, or an (address, port) pair) and wait for its answer."""
    loop = asyncio.get_running_loop()
    remote = server if isinstance(server, tuple) else (server, DNS_PORT)
    transport, proto = await loop.create_datagram_endpoint(lambda: _OneShot(qid), remote_addr=remote)
    try:
        transport.sendto(data)
        return await proto.done
    finally:
        transport.close()


_tasks: set[asyncio.Future[Any]] = set()


def _spawn(coro: Any) -> None:
    """A task that is kept referenced until done (the loop only keeps weak references)."""
    task = asyncio.ensure_future(coro)
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


class _UDPServer(asyncio.DatagramProtocol):
    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        _spawn(self._reply(data, addr))

    async def _reply(self, data: bytes, addr: Any) -> None:
        out = await self.resolver.answer(data, addr[0])
        if out is not None and not self.transport.is_closing():
            self.transport.sendto(out, addr)


async def _tcp_client(resolver: Resolver, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    client = (writer.get_extra_info("peername") or ("",))[0]
    try:
        while True:
            size = struct.unpack("!H", await reader.readexactly(2))[0]
            out = await resolver.answer(await reader.readexactly(size), client)
            if out is None:
                break
            writer.write(struct.pack("!H", len(out)) + out)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


def _socket(kind: int, address: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, kind)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # IP_FREEBIND: the gateway address may be added to the bridge just after us
    sock.setsockopt(socket.IPPROTO_IP, getattr(socket, "IP_FREEBIND", 15), 1)
    try:
        sock.bind((address, port))
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


class DNSServer:
    """UDP and TCP on ``address:port`` answering with :class:`Resolver`."""

    def __init__(self, address: str, lookup: Lookup, upstreams: Callable[[], list[str]] = host_resolvers,
                 port: int = DNS_PORT, client_upstreams: "Callable[[str], list[str] | None] | None" = None,
                 reverse: "Callable[[str], list[str] | None] | None" = None) -> None:
        self.address, self.port = address, port
        self.resolver = Resolver(lookup, upstreams, client_upstreams, reverse)
        self._udp: Any = None
        self._tcp: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for attempt in range(20 if self.port == 0 else 1):  # port 0 (tests): one number free for both
            udp = _socket(socket.SOCK_DGRAM, self.address, self.port)
            port = udp.getsockname()[1]
            try:
                tcp = _socket(socket.SOCK_STREAM, self.address, port)
                break
            except OSError as exc:
                udp.close()
                if self.port != 0 or exc.errno != errno.EADDRINUSE or attempt == 19:
                    raise
        self.port = port
        try:
            self._udp, _ = await loop.create_datagram_endpoint(lambda: _UDPServer(self.resolver), sock=udp)
            tcp.listen(64)
            self._tcp = await asyncio.start_server(lambda r, w: _tcp_client(self.resolver, r, w), sock=tcp)
        except BaseException:
            udp.close()
            tcp.close()
            if self._udp is not None:
                self._udp.close()
            raise

    def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._tcp is not None:
            self._tcp.close()
            self._tcp = None


class DNSServers:
    """The daemon's embedded servers, one per user network (by network id)."""

    def __init__(self, upstreams: Callable[[], list[str]] = host_resolvers) -> None:
        self.upstreams = upstreams
        self.servers: dict[str, DNSServer] = {}

    async def ensure(self, network_id: str, gateway: str, lookup: Lookup,
                     client_upstreams: "Callable[[str], list[str] | None] | None" = None,
                     reverse: "Callable[[str], list[str] | None] | None" = None) -> None:
        if network_id in self.servers:
            return
        server = DNSServer(gateway, lookup, self.upstreams, client_upstreams=client_upstreams, reverse=reverse)
        await server.start()
        self.servers[network_id] = server
        log.debug("embedded DNS for network %s on %s:53", network_id[:12], gateway)

    def remove(self, network_id: str) -> None:
        server = self.servers.pop(network_id, None)
        if server is not None:
            server.close()

    def close(self) -> None:
        for nid in list(self.servers):
            self.remove(nid)


def names_for(container_id: str, name: str, aliases: Iterable[str] | None) -> set[str]:
    """The names a container answers to on a user network: its name, its aliases and its short
    id (lower case, as DNS compares names case-insensitively)."""
    return {n.lower() for n in [name.lstrip("/"), container_id[:12], *(aliases or [])] if n}


# -- the networks service's side ----------------------------------------------------------------


def is_user_network(net: Any) -> bool:
    """Docker's embedded DNS serves user-defined networks with an address: not the default
    bridge, not host or none."""
    return not net.predefined and bool(net.gateway)


def lookup_for(service: Any, network_id: str) -> Lookup:
    """Names of the containers on one network, read from the service's records at query time
    (so connects, disconnects and renames need no bookkeeping here)."""

    def lookup(name: str) -> list[str] | None:
        rec = service.records.get(network_id)
        if rec is None:
            return None
        containers = getattr(getattr(service.daemon, "containers", None), "containers", {})
        found = []
        for ep in rec.endpoints.values():
            c = containers.get(ep.container_id)
            if ep.address and name in names_for(ep.container_id, c.name if c is not None else "", ep.aliases):
                found.append(ep.address.split("/")[0])
        return found or None

    return lookup


def reverse_for(service: Any, network_id: str) -> Callable[[str], "list[str] | None"]:
    """PTR answers as Docker gives them: ``<container name>.<network name>``."""

    def reverse(ip: str) -> list[str] | None:
        rec = service.records.get(network_id)
        containers = getattr(getattr(service.daemon, "containers", None), "containers", {})
        for ep in (rec.endpoints.values() if rec is not None else ()):
            if ep.address.split("/")[0] == ip and ep.container_id in containers:
                return [f"{containers[ep.container_id].name}.{rec.name}"]
        return None

    return reverse


def client_upstreams_for(service: Any, network_id: str) -> Callable[[str], "list[str] | None"]:
    """The ``--dns`` servers of the container asking (known by its address on the network)."""

    def upstreams(client_ip: str) -> list[str] | None:
        rec = service.records.get(network_id)
        containers = getattr(getattr(service.daemon, "containers", None), "containers", {})
        for ep in (rec.endpoints.values() if rec is not None else ()):
            if ep.address.split("/")[0] == client_ip and ep.container_id in containers:
                return list(containers[ep.container_id].host_config.get("Dns") or []) or None
        return None

    return upstreams


async def setup_container(service: Any, c: Any, directory: Path) -> None:
    """At container start, after its endpoints exist: the embedded server of each of its user
    networks runs, and its resolv.conf points at the first one's (else: the host's servers
    without loopback ones, as Docker does on the default bridge)."""
    from ..containers import etcfiles

    first = None
    for name in c.networks:
        rec = service.records.get(c.networks[name].get("NetworkID") or "")
        if rec is None or not is_user_network(rec.net):
            continue
        try:
            await service.dns.ensure(rec.id, rec.net.gateway, lookup_for(service, rec.id),
                                     client_upstreams_for(service, rec.id), reverse_for(service, rec.id))
        except OSError as exc:  # e.g. a host resolver bound to *:53 without SO_REUSEADDR
            log.warning("no embedded DNS on network %s (%s:53): %s", rec.name, rec.net.gateway, exc)
        first = first or rec
    text = (container_resolv_conf(first.net.gateway, c.host_config) if first is not None
            else etcfiles.resolv_conf(c.host_config))
    path = directory / "resolv.conf"
    path.write_text(text)
    path.chmod(0o644)


async def restore(service: Any) -> None:
    """Daemon start: servers for the user networks that have endpoints (running containers)."""
    for rec in list(service.records.values()):
        if rec.endpoints and is_user_network(rec.net):
            try:
                await service.dns.ensure(rec.id, rec.net.gateway, lookup_for(service, rec.id),
                                     client_upstreams_for(service, rec.id), reverse_for(service, rec.id))
            except OSError as exc:
                log.warning("embedded DNS for network %s: %s", rec.name, exc)
