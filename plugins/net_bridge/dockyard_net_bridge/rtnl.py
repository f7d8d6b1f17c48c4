"""The two rtnetlink requests of a container's wiring, as raw netlink batches.

Wiring a container is on the start path, and pyroute2 costs ~0.3-0.5 ms of Python per request
plus ~0.6 ms to make an ``IPRoute`` on a socket: more than the kernel work (host-facts.md §4).
So :func:`add_veth` (host side: the pair, the peer created in the container's namespace as
``eth0`` with its MAC and MTU; the host end on the bridge, up) is one message, and
:func:`configure` (inside the namespace: up, address, default route) is one ``sendmsg`` of three
messages that the kernel handles in order, each acknowledged. The bridges' own requests
(:func:`links`, :func:`addresses`, :func:`add_bridge`, :func:`set_up`, :func:`add_address`,
:func:`del_address`, :func:`del_link`) are here too: pyroute2 costs ~7 MB of the daemon's memory
once imported, and the default bridge is made at every start.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
from typing import Any

NETLINK_ROUTE = 0
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR, RTM_NEWROUTE = 20, 21, 22, 24
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x200, 0x400
NLM_F_DUMP = 0x300
NEW = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL
IFF_UP = 0x1
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_MASTER, IFLA_LINKINFO, IFLA_NET_NS_FD = 1, 3, 4, 10, 18, 28
IFLA_INFO_KIND, IFLA_INFO_DATA, VETH_INFO_PEER = 1, 2, 1
IFA_ADDRESS, IFA_LOCAL, IFA_BROADCAST = 1, 2, 4
RTA_GATEWAY, RTA_OIF = 5, 4
IFA_FLAGS, IFA_F_NODAD = 8, 0x02
RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST = 254, 3, 0, 1
NLA_F_NESTED = 0x8000


class RtnlError(OSError):
    """The kernel refused a request (``errno`` is the kernel's)."""


def _attr(kind: int, payload: bytes) -> bytes:
    size = 4 + len(payload)
    return struct.pack("=HH", size, kind) + payload + b"\0" * (-size % 4)


def _u32(kind: int, value: int) -> bytes:
    return _attr(kind, struct.pack("=I", value))


def _ifinfo(flags: int = 0, change: int = 0, index: int = 0) -> bytes:
    return struct.pack("=BxHiII", socket.AF_UNSPEC, 0, index, flags, change)


def _msg(kind: int, flags: int, seq: int, body: bytes) -> bytes:
    return struct.pack("=IHHII", 16 + len(body), kind, flags, seq, 0) + body


def _mac(mac: str) -> bytes:
    return bytes(int(b, 16) for b in mac.split(":"))


class Socket:
    """A NETLINK_ROUTE socket (in the namespace it was created in) that sends batches and
    waits for every acknowledgment."""

    def __init__(self, fd: int | None = None) -> None:
        if fd is None:
            self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
        else:
            self.sock = socket.socket(fileno=fd)
        self.sock.bind((0, 0))
        self.seq = 0

    def request(self, *messages: tuple[int, int, bytes]) -> None:
        """Send ``(type, flags, body)`` messages in one write; raise the first error."""
        batch, pending = [], set()
        for kind, flags, body in messages:
            self.seq += 1
            batch.append(_msg(kind, flags, self.seq, body))
            pending.add(self.seq)
        self.sock.send(b"".join(batch))
        error = 0
        while pending:
            data = self.sock.recv(65536)
            off = 0
            while off + 16 <= len(data):
                size, kind, _, seq, _ = struct.unpack_from("=IHHII", data, off)
                if kind == NLMSG_ERROR and seq in pending:
                    pending.discard(seq)
                    code = -struct.unpack_from("=i", data, off + 16)[0]
                    error = error or code
                off += (size + 3) & ~3 if size else len(data)
        if error:
            raise RtnlError(error, f"netlink: {os.strerror(error)}")

    def dump(self, kind: int, body: bytes) -> list[tuple[int, bytes]]:
        """A dump request: every answer ``(type, payload)`` up to NLMSG_DONE."""
        self.seq += 1
        seq = self.seq
        self.sock.send(_msg(kind, NLM_F_REQUEST | NLM_F_DUMP, seq, body))
        out: list[tuple[int, bytes]] = []
        while True:
            data = self.sock.recv(1 << 17)
            off = 0
            while off + 16 <= len(data):
                size, mtype, _, mseq, _ = struct.unpack_from("=IHHII", data, off)
                if mseq == seq:
                    if mtype == NLMSG_DONE:
                        return out
                    if mtype == NLMSG_ERROR:
                        code = -struct.unpack_from("=i", data, off + 16)[0]
                        if code:
                            raise RtnlError(code, f"netlink: {os.strerror(code)}")
                    else:
                        out.append((mtype, data[off + 16:off + size]))
                off += (size + 3) & ~3 if size else len(data)

    def close(self) -> None:
        self.sock.close()


def _attrs(payload: bytes, off: int) -> dict[int, bytes]:
    """The attributes of a message (first of each type), nested flag dropped."""
    out: dict[int, bytes] = {}
    while off + 4 <= len(payload):
        size, kind = struct.unpack_from("=HH", payload, off)
        if size < 4:
            break
        out.setdefault(kind & ~NLA_F_NESTED, payload[off + 4:off + size])
        off += (size + 3) & ~3
    return out


def _host(request: "Any") -> "Any":
    """Run ``request(sock)`` on the thread's host socket (a new one after a failure)."""
    try:
        return request(host_socket())
    except RtnlError:
        raise
    except BaseException:  # the socket may be out of step: a new one next time
        drop_host_socket()
        raise


def index_of(name: str) -> int | None:
    try:
        return socket.if_nametoindex(name)
    except OSError:
        return None


def links() -> list[tuple[int, str, int | None]]:
    """Every link of the host namespace: ``(index, name, master index or None)``."""
    out = []
    for mtype, payload in _host(lambda s: s.dump(RTM_GETLINK, _ifinfo())):
        if mtype != RTM_NEWLINK:
            continue
        index = struct.unpack_from("=i", payload, 4)[0]
        attrs = _attrs(payload, 16)
        name = attrs.get(IFLA_IFNAME, b"").split(b"\0", 1)[0].decode(errors="replace")
        master = struct.unpack("=I", attrs[IFLA_MASTER][:4])[0] if IFLA_MASTER in attrs else None
        out.append((index, name, master))
    return out


def addresses(index: int, family: int) -> list[tuple[str, int, int]]:
    """Link ``index``'s addresses of ``family``: ``(address, prefixlen, scope)``."""
    out = []
    body = struct.pack("=BBBBI", family, 0, 0, 0, 0)
    for mtype, payload in _host(lambda s: s.dump(RTM_GETADDR, body)):
        if mtype != RTM_NEWADDR:
            continue
        fam, prefixlen, _, scope, idx = struct.unpack_from("=BBBBI", payload)
        if idx != index or fam != family:
            continue
        raw = _attrs(payload, 8).get(IFA_ADDRESS)
        if raw is not None:
            out.append((socket.inet_ntop(fam, raw), prefixlen, scope))
    return out


def add_bridge(name: str, mtu: int) -> None:
    body = _ifinfo() + _attr(IFLA_IFNAME, name.encode() + b"\0") + _u32(IFLA_MTU, mtu)
    body += _attr(IFLA_LINKINFO | NLA_F_NESTED, _attr(IFLA_INFO_KIND, b"bridge"))
    _host(lambda s: s.request((RTM_NEWLINK, NEW, body)))


def set_up(index: int) -> None:
    _host(lambda s: s.request((RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK, _ifinfo(IFF_UP, IFF_UP, index))))


def del_link(index: int) -> None:
    _host(lambda s: s.request((RTM_DELLINK, NLM_F_REQUEST | NLM_F_ACK, _ifinfo(index=index))))


def _ifaddr(index: int, family: int, address: str, prefixlen: int, flags: int = 0) -> bytes:
    ip = socket.inet_pton(family, address)
    body = struct.pack("=BBBBI", family, prefixlen, flags, 0, index)
    if family == socket.AF_INET:
        body += _attr(IFA_LOCAL, ip)
    body += _attr(IFA_ADDRESS, ip)
    if flags:
        body += _u32(IFA_FLAGS, flags)
    return body


def add_address(index: int, family: int, address: str, prefixlen: int, flags: int = 0) -> None:
    body = _ifaddr(index, family, address, prefixlen, flags)
    _host(lambda s: s.request((RTM_NEWADDR, NEW, body)))


def del_address(index: int, family: int, address: str, prefixlen: int) -> None:
    body = _ifaddr(index, family, address, prefixlen)
    _host(lambda s: s.request((RTM_DELADDR, NLM_F_REQUEST | NLM_F_ACK, body)))


_local = threading.local()


def host_socket() -> Socket:
    """The calling thread's socket in the host namespace (kept for the thread's life)."""
    s = getattr(_local, "sock", None)
    if s is None:
        s = _local.sock = Socket()
    return s


def drop_host_socket() -> None:
    s = getattr(_local, "sock", None)
    _local.sock = None
    if s is not None:
        s.close()


def add_veth(name: str, mtu: int, master: int, peer_name: str, peer_netns: str, peer_mac: str = "") -> None:
    """The pair in one request: ``name`` on bridge ``master`` (an index), up; its peer
    ``peer_name`` created inside the namespace pinned at ``peer_netns``, up."""
    fd = os.open(peer_netns, os.O_RDONLY | os.O_CLOEXEC)
    try:
        # the peer cannot be made up here (veth_open: ENOTCONN before the pair exists): configure() does it
        peer = _ifinfo() + _attr(IFLA_IFNAME, peer_name.encode() + b"\0") + _u32(IFLA_NET_NS_FD, fd)
        peer += _u32(IFLA_MTU, mtu) + (_attr(IFLA_ADDRESS, _mac(peer_mac)) if peer_mac else b"")
        info = _attr(IFLA_INFO_KIND, b"veth") + _attr(IFLA_INFO_DATA | NLA_F_NESTED, _attr(VETH_INFO_PEER, peer))
        body = _ifinfo(IFF_UP, IFF_UP) + _attr(IFLA_IFNAME, name.encode() + b"\0") + _u32(IFLA_MTU, mtu)
        body += _u32(IFLA_MASTER, master) + _attr(IFLA_LINKINFO | NLA_F_NESTED, info)
        try:
            host_socket().request((RTM_NEWLINK, NEW, body))
        except RtnlError:
            raise
        except BaseException:  # the socket may be out of step: a new one next time
            drop_host_socket()
            raise
    finally:
        os.close(fd)


def configure(sock: Socket, index: int, address: str, prefixlen: int, gateway: str | None) -> None:
    """Link ``index`` up, its address (with broadcast) and, if ``gateway``, the default route:
    one batch on ``sock`` (a socket in the container's namespace)."""
    ip = socket.inet_aton(address)
    bcast = struct.pack("!I", struct.unpack("!I", ip)[0] | (0xFFFFFFFF >> prefixlen if prefixlen < 32 else 0))
    addr = struct.pack("=BBBBI", socket.AF_INET, prefixlen, 0, 0, index)
    addr += _attr(IFA_LOCAL, ip) + _attr(IFA_ADDRESS, ip) + _attr(IFA_BROADCAST, bcast)
    messages = [(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK, _ifinfo(IFF_UP, IFF_UP, index)), (RTM_NEWADDR, NEW, addr)]
    if gateway:
        route = struct.pack("=BBBBBBBBI", socket.AF_INET, 0, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE,
                            RTN_UNICAST, 0) + _attr(RTA_GATEWAY, socket.inet_aton(gateway))
        messages.append((RTM_NEWROUTE, NEW, route))
    sock.request(*messages)


def add_addresses(sock: Socket, index: int, addresses: list[str]) -> None:
    """More addresses (``ip/prefixlen``, IPv4 or IPv6) on link ``index``: an endpoint's
    ``LinkLocalIPs``. One batch on ``sock`` (a socket in the container's namespace)."""
    import ipaddress

    messages = []
    for text in addresses:
        iface = ipaddress.ip_interface(text)
        if iface.version == 4:
            ip = iface.ip.packed
            bcast = iface.network.broadcast_address.packed
            body = struct.pack("=BBBBI", socket.AF_INET, iface.network.prefixlen, 0, 0, index)
            body += _attr(IFA_LOCAL, ip) + _attr(IFA_ADDRESS, ip) + _attr(IFA_BROADCAST, bcast)
        else:
            body = struct.pack("=BBBBI", socket.AF_INET6, iface.network.prefixlen, 0, 0, index)
            body += _attr(IFA_ADDRESS, iface.ip.packed)
        messages.append((RTM_NEWADDR, NEW, body))
    if messages:
        sock.request(*messages)


def configure6(sock: Socket, index: int, address: str, prefixlen: int, gateway: str | None) -> None:
    """The IPv6 side of :func:`configure` (after it: the link is up): the address without
    duplicate address detection (usable at once, as the engine hands out unique addresses)
    and, if ``gateway``, the IPv6 default route. One batch on ``sock``."""
    ip = socket.inet_pton(socket.AF_INET6, address)
    addr = struct.pack("=BBBBI", socket.AF_INET6, prefixlen, IFA_F_NODAD, 0, index)
    addr += _attr(IFA_ADDRESS, ip) + _u32(IFA_FLAGS, IFA_F_NODAD)
    messages = [(RTM_NEWADDR, NEW, addr)]
    if gateway:
        route = struct.pack("=BBBBBBBBI", socket.AF_INET6, 0, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE,
                            RTN_UNICAST, 0)
        route += _attr(RTA_GATEWAY, socket.inet_pton(socket.AF_INET6, gateway)) + _u32(RTA_OIF, index)
        messages.append((RTM_NEWROUTE, NEW, route))
    sock.request(*messages)
