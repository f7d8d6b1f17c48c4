"""The embedded DNS at 127.0.0.11 inside each container on a user-defined network, as Docker's.

A container with at least one user-defined network gets, inside its own network namespace
(:class:`ContainerDNS`):

* a UDP and a TCP socket bound to ``127.0.0.11`` on random ports, served by the daemon's asyncio
  loop. They are made in a short-lived thread that ``setns``-es into the container's pinned
  namespace (:func:`netns.run_in`): a socket stays in the namespace it was created in, and no
  thread of a pool is ever moved to another namespace;
* an nftables table ``dockyard_dns`` (same thread, libnftables, else ``nft -f -``) that DNATs
  ``127.0.0.11:53`` to those ports, so the container's own processes may still bind
  ``0.0.0.0:53`` (a dnsmasq or coredns container), as Docker does with iptables.

Its resolv.conf says ``nameserver 127.0.0.11``, the ``--dns-search`` (else the host's) search
domains, the ``--dns-option`` (else the host's) options plus ``ndots:0`` unless an ``ndots`` is
set (:func:`internal_resolv_conf`, moby's ``TransformForIntNS``). Its ``--dns`` servers (else the
host's) are the resolver's upstreams, asked from the host's namespace, so a resolver on the
host's loopback (systemd-resolved's 127.0.0.53, ``--dns 127.0.0.1``) works too; with no
answer the reply is SERVFAIL.

The sockets know their container, so a question needs no search by source address: the
container sees the names (container name, network aliases, short id) on every user network
it is attached to, first-joined first (:func:`scope`), read from the records at query time,
so connect, disconnect and rename need no bookkeeping here.

Lifetime, as Docker's sandbox resolver: started at container start, or when a running
container (say a default-bridge one) joins its first user network, which also rewrites its
resolv.conf then; kept until the container stops (a disconnect changes neither the sockets
nor the file); the sockets are closed when the container's network goes (the namespace and
its rules go with it); re-created for running containers when the daemon restarts
(:func:`restore`). Containers only on the default bridge have no embedded DNS and keep the
host-style resolv.conf (``etcfiles.resolv_conf``), as in Docker.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

if TYPE_CHECKING:
    from dnslib import DNSRecord

from .. import container_defaults
from ..containers import etcfiles
from ..errors import DockyardError
from ..nftables import Nft
from . import netns
from ..tasks import spawn

log = logging.getLogger("dockyard.dns")

ADDRESS = "127.0.0.11"  # Docker's: in every container's own loopback range
TABLE = "dockyard_dns"  # the nftables table in the container's namespace
TTL = 600  # Docker's embedded DNS answers with 600 s
FORWARD_TIMEOUT = 2.0
DNS_PORT = 53

#: a name in lower case without trailing dot -> addresses (IPv4, and IPv6 on networks with
#: IPv6), or None if unknown. Reverse lookups (PTR) have the same shape: an address -> names.
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


def internal_resolv_conf(host_config: dict[str, Any], path: str = "/etc/resolv.conf") -> str:
    """The resolv.conf of a container with the embedded DNS: ``nameserver 127.0.0.11`` only
    (its ``--dns`` servers are the resolver's upstreams, not entries), the user's or the host's
    search domains and options, and ``ndots:0`` unless an ``ndots`` option is there (moby)."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        lines = []
    host_config = container_defaults.dns(host_config)  # the daemon's dns-search/dns-opts
    options = list(host_config.get("DnsOptions") or []) or [
        w for line in lines if line.startswith("options") for w in line.split()[1:]]
    if not any(o.split(":")[0] == "ndots" for o in options):
        options.append("ndots:0")
    return etcfiles.format_resolv_conf([ADDRESS], {**host_config, "DnsOptions": options}, lines)


class Resolver:
    """Answers one query (wire format in, wire format out); shared by the UDP and TCP sides."""

    def __init__(self, lookup: Lookup, upstreams: Callable[[], list[Any] | None] = host_resolvers,
                 reverse: Lookup | None = None) -> None:
        self.lookup = lookup
        self.upstreams = upstreams  # the container's --dns servers, else the host's
        self.reverse = reverse  # address -> names, for PTR questions about containers' addresses

    async def answer(self, data: bytes) -> bytes | None:
        # dnslib (~0.6 MB) comes with the first query: a daemon without user networks never asks
        from dnslib import AAAA, PTR, QTYPE, RCODE, RR, A, DNSError, DNSRecord

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
        if q.qtype == QTYPE.PTR and self.reverse is not None and (ptr := _ptr_address(name)):
            names = self.reverse(ptr)
            if names:
                reply = query.reply()
                for n in names:
                    reply.add_answer(RR(q.qname, QTYPE.PTR, rdata=PTR(n + "."), ttl=TTL))
                return reply.pack()
        addresses = self.lookup(name) if name else None
        if addresses is not None:
            reply = query.reply()
            for ip in addresses:
                if ":" in ip and q.qtype in (QTYPE.AAAA, QTYPE.ANY):
                    reply.add_answer(RR(q.qname, QTYPE.AAAA, rdata=AAAA(ip), ttl=TTL))
                elif ":" not in ip and q.qtype in (QTYPE.A, QTYPE.ANY):
                    reply.add_answer(RR(q.qname, QTYPE.A, rdata=A(ip), ttl=TTL))
            # others (and AAAA on IPv4-only networks) for a known name: an empty NOERROR answer
            return reply.pack()
        return await self.forward(query, data)

    async def forward(self, query: DNSRecord, data: bytes) -> bytes:
        from dnslib import RCODE

        servers = self.upstreams()
        for server in servers or ():
            with contextlib.suppress(OSError, asyncio.TimeoutError):
                return await asyncio.wait_for(_udp_query(server, data, query.header.id), FORWARD_TIMEOUT)
        reply = query.reply()
        if servers is not None:
            reply.header.rcode = RCODE.SERVFAIL
        else:  # forwarding is off (internal networks only): REFUSED, recursion not available, as moby
            reply.header.rcode = RCODE.REFUSED
            reply.header.ra = 0
        return reply.pack()


def _ptr_address(name: str) -> str | None:
    """The address a PTR question names: ``4.3.2.1.in-addr.arpa`` or the 32 nibbles of
    ``ip6.arpa``, in canonical form; None for anything else."""
    try:
        if name.endswith(".in-addr.arpa"):
            return str(ipaddress.IPv4Address(".".join(reversed(name[: -len(".in-addr.arpa")].split(".")))))
        if name.endswith(".ip6.arpa"):
            nibbles = name[: -len(".ip6.arpa")].split(".")
            if len(nibbles) == 32 and all(len(x) == 1 for x in nibbles):
                return str(ipaddress.IPv6Address(int("".join(reversed(nibbles)), 16)))
    except ValueError:
        pass
    return None


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
    task = spawn(coro, "embedded DNS")  # logs its exception
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
        out = await self.resolver.answer(data)
        if out is not None and not self.transport.is_closing():
            self.transport.sendto(out, addr)


# -- sockets and rules inside a container's namespace ---------------------------------------------

def nft_in_this_namespace(script: str) -> None:
    """Run an nft script in the calling thread's network namespace."""
    nft = Nft()
    try:
        nft.run(script)
    finally:
        nft.close()


def redirect_rules(udp_port: int, tcp_port: int) -> str:
    """The container-namespace table sending ``127.0.0.11:53`` to the resolver's ports. The same
    transaction works on a fresh namespace and replaces the rules of an older resolver (daemon
    restart: new ports); flushing the chain is cheap, deleting the table would wait ~10 ms for
    the kernel to unregister its hook."""
    rule = f"add rule ip {TABLE} output ip daddr {ADDRESS}"
    return (f"table ip {TABLE} {{\n"
            f"\tchain output {{\n\t\ttype nat hook output priority -100; policy accept;\n\t}}\n}}\n"
            f"flush chain ip {TABLE} output\n"
            f"{rule} udp dport {DNS_PORT} dnat to {ADDRESS}:{udp_port}\n"
            f"{rule} tcp dport {DNS_PORT} dnat to {ADDRESS}:{tcp_port}\n")


def _bind_and_redirect() -> tuple[socket.socket, socket.socket]:
    """In the container's namespace (see :func:`netns.run_in`): the two sockets and the rules."""
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        udp.bind((ADDRESS, 0))
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        tcp.bind((ADDRESS, 0))
        tcp.listen(64)
        udp.setblocking(False)
        tcp.setblocking(False)
        nft_in_this_namespace(redirect_rules(udp.getsockname()[1], tcp.getsockname()[1]))
    except BaseException:
        udp.close()
        tcp.close()
        raise
    return udp, tcp


class ContainerDNS:
    """One container's resolver: UDP and TCP on 127.0.0.11 in its namespace, in the daemon's loop."""

    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver
        self.ports = (0, 0)  # (udp, tcp) behind 127.0.0.11:53
        self._udp: Any = None
        self._tcp: asyncio.AbstractServer | None = None
        self._clients: set[asyncio.StreamWriter] = set()

    async def start(self, namespace: "str | Path") -> None:
        # a pool thread only waits here: the setns happens in a thread of its own that then exits
        udp, tcp = await asyncio.to_thread(netns.run_in, namespace, _bind_and_redirect)
        self.ports = (udp.getsockname()[1], tcp.getsockname()[1])
        try:
            loop = asyncio.get_running_loop()
            self._udp, _ = await loop.create_datagram_endpoint(lambda: _UDPServer(self.resolver), sock=udp)
            self._tcp = await asyncio.start_server(self._client, sock=tcp)
        except BaseException:
            self.close()
            udp.close()
            tcp.close()
            raise

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._clients.add(writer)
        try:
            while True:
                size = struct.unpack("!H", await reader.readexactly(2))[0]
                out = await self.resolver.answer(await reader.readexactly(size))
                if out is None:
                    break
                writer.write(struct.pack("!H", len(out)) + out)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._clients.discard(writer)
            writer.close()

    def close(self) -> None:
        """Close every socket (the rules go with the namespace, or are replaced at the next start)."""
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._tcp is not None:
            self._tcp.close()
            self._tcp = None
        for writer in list(self._clients):
            writer.close()
        self._clients.clear()


class EmbeddedDNS:
    """The daemon's resolvers, one per container that has one (by container id)."""

    def __init__(self, service: Any) -> None:
        self.service = service  # the NetworkService: names are read from its records at query time
        self.servers: dict[str, ContainerDNS] = {}

    async def start(self, container_id: str, namespace: "str | Path") -> None:
        if container_id in self.servers:
            return
        server = ContainerDNS(resolver_for(self.service, container_id))
        await server.start(namespace)
        self.servers[container_id] = server
        log.debug("embedded DNS of %s on %s:53 (ports %s)", container_id[:12], ADDRESS, server.ports)

    def stop(self, container_id: str) -> None:
        server = self.servers.pop(container_id, None)
        if server is not None:
            server.close()

    def close(self) -> None:
        for cid in list(self.servers):
            self.stop(cid)


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


def _ips(ep: Any) -> list[str]:
    """The endpoint's IPv4 address, and its IPv6 address on a network with IPv6."""
    address6 = getattr(ep, "address6", "")
    return [a.split("/")[0] for a in (ep.address, address6) if a]


def scope(service: Any, container_id: str) -> list[Any]:
    """The user-network records whose names the container sees, in the order they are searched:
    every user network it has an endpoint on, first-joined first (Docker's sandbox resolves over
    all of its endpoints). A network being connected (endpoint made, not yet listed) comes last."""
    c = _containers(service).get(container_id)
    joined = [s.get("NetworkID") for s in getattr(c, "networks", {}).values()]
    ids = [i for i in joined if i] + [r.id for r in service.records.values() if r.id not in joined]
    out = []
    for nid in ids:
        rec = service.records.get(nid)
        if rec is not None and is_user_network(rec.net) and any(
                e.container_id == container_id for e in rec.endpoints.values()):
            out.append(rec)
    return out


def link_target(service: Any, container_id: str, rec: Any, name: str) -> str | None:
    """The container a legacy link of ``container_id``'s endpoint on ``rec`` names by the alias
    ``name`` (``network connect --link target:alias``), or None: moby's sandbox checks these
    aliases first, and only for the container that holds the link."""
    c = _containers(service).get(container_id)
    settings = (getattr(c, "networks", {}) or {}).get(rec.name) or {}
    for link in settings.get("Links") or []:
        target, _, alias = str(link).partition(":")
        target = target.strip("/")
        alias = alias.rsplit("/", 1)[-1] if alias else target
        if alias.lower() == name and target:
            return target.lower()
    return None


def lookup(service: Any, container_id: str, name: str) -> list[str] | None:
    """A name as the container sees it (:func:`scope`): the addresses on the first of its
    networks where the name is known, i.e. an address the two containers share a network on.
    The aliases of its endpoints' links come first (moby's ``ResolveName``)."""
    containers = _containers(service)
    recs = scope(service, container_id)
    for rec in recs:
        target = link_target(service, container_id, rec, name)
        if target is None:
            continue
        found = []
        for ep in rec.endpoints.values():
            c = containers.get(ep.container_id)
            if ep.address and target in names_for(ep.container_id, c.name if c is not None else "", ep.aliases):
                found += _ips(ep)
        if found:
            return found
    for rec in recs:
        found = []
        for ep in rec.endpoints.values():
            c = containers.get(ep.container_id)
            if ep.address and name in names_for(ep.container_id, c.name if c is not None else "", ep.aliases):
                found += _ips(ep)
        if found:
            return found
    return None


def reverse(service: Any, container_id: str, ip: str) -> list[str] | None:
    """PTR answers as Docker gives them, ``<container name>.<network name>``, for the addresses
    on the container's networks (:func:`scope`)."""
    containers = _containers(service)
    for rec in scope(service, container_id):
        for ep in rec.endpoints.values():
            if ip in _ips(ep) and ep.container_id in containers:
                return [f"{containers[ep.container_id].name}.{rec.name}"]
    return None


def upstreams(service: Any, container_id: str) -> list[str] | None:
    """Where names unknown to the container are forwarded: its ``--dns`` servers, else the host's;
    None (forwarding off) for a container whose every network is ``--internal`` (it happens from the
    host's namespace, so it would leak names out of a network that must not reach out: moby's
    fix for CVE-2024-29018)."""
    c = _containers(service).get(container_id)
    if c is None:
        return host_resolvers()
    records = [service.records.get(s.get("NetworkID") or "") for s in getattr(c, "networks", {}).values()]
    if records and all(r is not None and r.net.internal for r in records):
        return None
    return list(container_defaults.dns(c.host_config).get("Dns") or []) or host_resolvers()


def resolver_for(service: Any, container_id: str) -> Resolver:
    return Resolver(lambda name: lookup(service, container_id, name),
                    lambda: upstreams(service, container_id),
                    lambda ip: reverse(service, container_id, ip))


async def setup_container(service: Any, c: Any, directory: Path, connect: bool = False) -> None:
    """After a container's endpoints exist, at start or at ``network connect`` of a running one:
    with a user network (and no resolver yet) its resolver starts and its resolv.conf names
    127.0.0.11. At start without one, the host-style file (as a restarted container that had
    the resolver must get again); at connect without one, nothing changes."""
    if c.id in service.dns.servers:
        return
    if scope(service, c.id):
        await service.dns.start(c.id, service.netns_path(c.id))
        text = internal_resolv_conf(c.host_config)
    elif connect:
        return
    else:
        text = etcfiles.resolv_conf(c.host_config)
    etcfiles.write_resolv_conf(directory, text)


def _uses_internal(directory: Path) -> bool:
    return f"nameserver {ADDRESS}" in (etcfiles.read_resolv_conf(directory) or "").splitlines()


async def restore(service: Any) -> None:
    """Daemon start (live-restore): a resolver again for each running container that had one
    (its sockets died with the old daemon; its rules are replaced with the new ports)."""
    svc = service.daemon.containers
    pinned = {p.name for p in netns.mounted_under(service.netns_dir)}
    for cid, c in list(_containers(service).items()):
        if not c.running or cid not in pinned:
            continue
        if not scope(service, cid) and not _uses_internal(svc.dir(c)):
            continue
        try:
            await service.dns.start(cid, service.netns_path(cid))
        except (OSError, DockyardError) as exc:
            log.warning("no embedded DNS for container %s: %s", cid[:12], exc)
