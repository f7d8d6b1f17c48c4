"""The embedded DNS server of user-defined networks, with Docker's semantics.

One server per user network listens on UDP and TCP port 53 of the network's gateway address
(the host's end of the bridge); a container on user networks gets ``nameserver <gateway>`` of
the first of them in its resolv.conf (rewritten in place when its networks change:
:func:`write_resolv_conf`). A server answers by who asks: the asking container (known by its
address) sees the names (container name, network aliases, short id) of the containers on every
user network it is attached to, as Docker's resolver does (:func:`scope`); an unknown address
sees the server's own network. Every other question is forwarded to the host's resolvers from
/etc/resolv.conf. Forwarding happens from the host side, so a resolver on the host's loopback
(systemd-resolved's 127.0.0.53) works too; with no resolver at all the answer is a quick SERVFAIL.

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

#: (name in lower case without trailing dot, address of the client asking) -> IPv4 addresses,
#: or None if the name is unknown to that client. Reverse lookups (PTR) have the same shape:
#: (IPv4 address, client address) -> names.
Lookup = Callable[[str, str], "list[str] | None"]


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
                 reverse: "Lookup | None" = None) -> None:
        self.lookup = lookup
        self.upstreams = upstreams
        self.client_upstreams = client_upstreams  # a container's own --dns servers, by its address
        self.reverse = reverse  # (address, client) -> names, for PTR questions about containers' addresses

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
            names = self.reverse(".".join(reversed(name[: -len(".in-addr.arpa")].split("."))), client)
            if names:
                reply = query.reply()
                for n in names:
                    reply.add_answer(RR(q.qname, QTYPE.PTR, rdata=PTR(n + "."), ttl=TTL))
                return reply.pack()
        addresses = self.lookup(name, client) if name else None
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
                 reverse: "Lookup | None" = None) -> None:
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
                     reverse: "Lookup | None" = None) -> None:
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


def _containers(service: Any) -> dict[str, Any]:
    return getattr(getattr(service.daemon, "containers", None), "containers", {})


def _ip(ep: Any) -> str:
    return ep.address.split("/")[0] if ep.address else ""


def asker(service: Any, client_ip: str) -> str | None:
    """The id of the container whose endpoint has ``client_ip``, on any network (the subnets of
    a daemon's networks do not overlap, so there is at most one), or None."""
    if not client_ip:
        return None
    for rec in service.records.values():
        for ep in rec.endpoints.values():
            if _ip(ep) == client_ip:
                return ep.container_id
    return None


def scope(service: Any, network_id: str, client_ip: str) -> list[Any]:
    """The network records whose names ``client_ip`` sees, in the order they are searched.

    A known container sees every user network it is attached to: the network whose server it
    asked first, then the others in the order it joined them (Docker's sandbox resolves over
    all of its endpoints, its own network first). An address that is no container's sees only
    the server's network. Read from the records at query time: connects, disconnects and
    renames need no bookkeeping here."""
    cid = asker(service, client_ip)
    if cid is None:
        rec = service.records.get(network_id)
        return [rec] if rec is not None else []
    joined = [s.get("NetworkID") for s in getattr(_containers(service).get(cid), "networks", {}).values()]
    ids = [network_id] + [i for i in joined if i and i != network_id]
    ids += [r.id for r in service.records.values() if r.id not in ids]  # joined, not yet listed (connect)
    out = []
    for nid in ids:
        rec = service.records.get(nid)
        if rec is not None and is_user_network(rec.net) and any(
                e.container_id == cid for e in rec.endpoints.values()):
            out.append(rec)
    return out


def lookup_for(service: Any, network_id: str) -> Lookup:
    """Names as the asking client sees them (:func:`scope`): the addresses on the first of its
    networks where the name is known, i.e. an address the two containers share a network on."""

    def lookup(name: str, client: str = "") -> list[str] | None:
        containers = _containers(service)
        for rec in scope(service, network_id, client):
            found = []
            for ep in rec.endpoints.values():
                c = containers.get(ep.container_id)
                if ep.address and name in names_for(ep.container_id, c.name if c is not None else "", ep.aliases):
                    found.append(_ip(ep))
            if found:
                return found
        return None

    return lookup


def reverse_for(service: Any, network_id: str) -> Lookup:
    """PTR answers as Docker gives them, ``<container name>.<network name>``, for the addresses
    on the networks the client sees (:func:`scope`)."""

    def reverse(ip: str, client: str = "") -> list[str] | None:
        containers = _containers(service)
        for rec in scope(service, network_id, client):
            for ep in rec.endpoints.values():
                if _ip(ep) == ip and ep.container_id in containers:
                    return [f"{containers[ep.container_id].name}.{rec.name}"]
        return None

    return reverse


def client_upstreams_for(service: Any, network_id: str) -> Callable[[str], "list[str] | None"]:
    """The ``--dns`` servers of the container asking (known by its address on any network)."""

    def upstreams(client_ip: str) -> list[str] | None:
        c = _containers(service).get(asker(service, client_ip) or "")
        if c is None:
            return None
        return list(c.host_config.get("Dns") or []) or None

    return upstreams


async def setup_container(service: Any, c: Any, directory: Path) -> None:
    """At container start and network connect, after its endpoints exist: the embedded server
    of each of its user networks runs, and its resolv.conf points at the first one's."""
    for name in c.networks:
        rec = service.records.get(c.networks[name].get("NetworkID") or "")
        if rec is None or not is_user_network(rec.net):
            continue
        try:
            await service.dns.ensure(rec.id, rec.net.gateway, lookup_for(service, rec.id),
                                     client_upstreams_for(service, rec.id), reverse_for(service, rec.id))
        except OSError as exc:  # e.g. a host resolver bound to *:53 without SO_REUSEADDR
            log.warning("no embedded DNS on network %s (%s:53): %s", rec.name, rec.net.gateway, exc)
    write_resolv_conf(service, c, directory)


def write_resolv_conf(service: Any, c: Any, directory: Path) -> None:
    """The container's resolv.conf for its networks now: ``nameserver`` the gateway of its first
    user network, else (none left, or only the default bridge) the host's servers without
    loopback ones, as Docker does on the default bridge; ``--dns-search``/``--dns-option`` kept
    either way. Called at start, connect and disconnect.

    The file is bind-mounted into a running container, so it is rewritten in place (same inode:
    a new file renamed over it would stay invisible to the container), and only when its
    content changes."""
    from ..containers import etcfiles

    first = None
    for settings in c.networks.values():
        rec = service.records.get(settings.get("NetworkID") or "")
        if rec is not None and is_user_network(rec.net):
            first = rec
            break
    text = (container_resolv_conf(first.net.gateway, c.host_config) if first is not None
            else etcfiles.resolv_conf(c.host_config))
    path = directory / "resolv.conf"
    with contextlib.suppress(OSError):
        if path.read_text() == text:
            return
    with open(path, "w") as f:  # truncates: the same inode
        f.write(text)
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
