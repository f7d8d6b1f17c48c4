"""The two rtnetlink requests of a container's wiring, as raw netlink batches.

Wiring a container is on the start path, and pyroute2 costs ~0.3-0.5 ms of Python per request
plus ~0.6 ms to make an ``IPRoute`` on a socket: more than the kernel work (host-facts.md §4).
So :func:`add_veth` (host side: the pair, the peer created in the container's namespace as
``eth0`` with its MAC and MTU; the host end on the bridge, up) is one message, and
:func:`configure` (inside the namespace: up, address, default route) is one ``sendmsg`` of three
messages that the kernel handles in order, each acknowledged. Everything else (bridges,
listings, reconcile) stays on pyroute2.
"""

from __future__ import annotations

import os
import socket
import struct
import threading

NETLINK_ROUTE = 0
RTM_NEWLINK, RTM_NEWADDR, RTM_NEWROUTE = 16, 20, 24
NLMSG_ERROR = 2
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x200, 0x400
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

    def close(self) -> None:
        self.sock.close()


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
