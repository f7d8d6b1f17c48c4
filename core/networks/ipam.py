"""IP address management: default subnets and per-network address allocations.

Default subnets come from Docker's pools (172.18-31.0.0/16, then 192.168.x.0/20), skipping
every subnet that overlaps a route of the host (another engine's bridge, the LAN), the
subnets Docker and Podman use by default (172.17/16, 10.88/16) and this daemon's own
networks. Daemons with other data roots start at another place in the pool, and a host-wide
lock file keeps two daemons from picking the same subnet at the same moment: the winner's
bridge route exists before the lock is released.

Allocations are part of the network's record (``ip -> owner``), saved before the address is
used, so an address is never handed out twice, across daemon restarts too. Dynamic
addresses are handed out round-robin after the last one given, as Docker does, so a just
released address is not reused at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import ipaddress
import itertools
import os
import socket
import struct
from pathlib import Path
from typing import Any, Iterable, Iterator

from ..errors import Conflict, InvalidArgument, Unavailable

Net = ipaddress.IPv4Network
RESERVED = [ipaddress.IPv4Network("172.17.0.0/16"), ipaddress.IPv4Network("10.88.0.0/16")]
LOCK_PATH = Path("/run/dockyard-subnets.lock")


def default_pools(configured: Iterable[tuple[str, int]] = ()) -> list[Net]:
    """The daemon's ``default-address-pools`` (each base cut in subnets of its size), else
    Docker's defaults."""
    out: list[Net] = []
    for base, size in configured:
        net = ipaddress.ip_network(base)
        if isinstance(net, ipaddress.IPv4Network):
            out += list(itertools.islice(net.subnets(new_prefix=size), 4096))
    if out:
        return out
    pools = [ipaddress.IPv4Network(f"172.{i}.0.0/16") for i in range(18, 32)]
    pools += [ipaddress.IPv4Network(f"192.168.{i}.0/20") for i in range(0, 256, 16)]
    return pools


def host_routes() -> list[Net]:
    """Destinations of the host's IPv4 routes (not the default route)."""
    out = []
    try:
        with open("/proc/net/route") as f:
            next(f, None)
            for line in f:
                parts = line.split()
                if len(parts) < 8:
                    continue
                dest, mask = (struct.pack("<I", int(parts[i], 16)) for i in (1, 7))
                if mask == b"\0\0\0\0":
                    continue
                out.append(ipaddress.IPv4Network(f"{socket.inet_ntoa(dest)}/{socket.inet_ntoa(mask)}", strict=False))
    except OSError:
        pass
    return out


def pick_subnet(taken: Iterable[Net], start: int = 0, configured: Iterable[tuple[str, int]] = ()) -> Net:
    taken = [*taken, *RESERVED, *host_routes()]
    pools = default_pools(configured)
    for i in range(len(pools)):
        candidate = pools[(start + i) % len(pools)]
        if not any(candidate.overlaps(t) for t in taken):
            return candidate
    raise Unavailable("could not find an available, non-overlapping IPv4 address pool among the defaults "
                      "to assign to the network")


@contextlib.contextmanager
def host_lock() -> Iterator[None]:
    """Serialize subnet choice + bridge creation between daemons on this host."""
    try:
        fd = os.open(LOCK_PATH, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def parse_subnet(value: str, version: int = 4) -> Any:
    """A subnet of the given IP version (4, or 6 for IPv6 networks)."""
    try:
        net = ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise InvalidArgument(f"invalid subnet {value!r}") from None
    if net.version != version:
        raise InvalidArgument(f"IPv{net.version} subnet {value} where an IPv{version} one was expected")
    if "/" in value and _host_bits(value.strip()):
        raise InvalidArgument(f"invalid subnet {value}: it has host bits set (did you mean {net}?)")
    if net.prefixlen > (30 if version == 4 else 126):
        raise InvalidArgument(f"subnet {net} is too small: at most a /{30 if version == 4 else 126}")
    return net


def parse_address(value: str, what: str, version: int = 4) -> Any:
    try:
        addr = ipaddress.ip_address(value.split("/")[0])
    except ValueError:
        raise InvalidArgument(f"invalid {what} {value!r}") from None
    if addr.version != version:
        raise InvalidArgument(f"invalid {what} {value}: not an IPv{version} address")
    return addr


def _host_bits(value: str) -> bool:
    """``10.1.0.5/24`` has host bits set; ``2001:389::0/96`` (not canonical) has none."""
    try:
        ipaddress.ip_network(value, strict=True)
    except ValueError:
        return True
    return False


# -- IPv6 -------------------------------------------------------------------------------------


def ula_base(seed: str) -> ipaddress.IPv6Network:
    """This daemon's unique-local /48 (RFC 4193 ``fd`` + a 40-bit global id), as Docker 27 derives
    its default IPv6 pool from its engine id: the /64s of networks without an IPv6 subnet come
    from here."""
    digest = hashlib.sha256(seed.encode()).digest()
    return ipaddress.IPv6Network((b"\xfd" + digest[:5] + b"\0" * 10, 48))


def host_routes6() -> list[ipaddress.IPv6Network]:
    """Destinations of the host's IPv6 routes (not the default route, not link-local)."""
    out = []
    try:
        with open("/proc/net/ipv6_route") as f:
            for line in f:
                parts = line.split()
                if len(parts) < 2:
                    continue
                plen = int(parts[1], 16)
                if plen == 0:
                    continue
                net = ipaddress.IPv6Network((bytes.fromhex(parts[0]), plen), strict=False)
                if not net.is_link_local and not net.is_multicast:
                    out.append(net)
    except (OSError, ValueError):
        pass
    return out


def pick_subnet6(taken: Iterable[ipaddress.IPv6Network], base: ipaddress.IPv6Network,
                 start: int = 0) -> ipaddress.IPv6Network:
    """A free /64 of ``base`` (not used by our networks nor routed on the host), tried from a
    random place so two networks made at the same moment by two daemons rarely meet."""
    taken = [*taken, *host_routes6()]
    count = 1 << (64 - base.prefixlen)
    first = int(base.network_address) >> 64
    for i in range(min(count, 4096)):
        candidate = ipaddress.IPv6Network(((first + (start + i) % count) << 64, 64))
        if not any(candidate.overlaps(t) for t in taken):
            return candidate
    raise Unavailable("could not find an available, non-overlapping IPv6 address pool among the defaults "
                      "to assign to the network")


class Pool:
    """The allocations of one network (a view over its record's ``allocated`` dict)."""

    def __init__(self, subnet: str, ip_range: str, allocated: dict[str, str], last: str = "") -> None:
        self.subnet: Any = ipaddress.ip_network(subnet)
        self.version = self.subnet.version
        self.range = ipaddress.ip_network(ip_range) if ip_range else self.subnet
        self.allocated = allocated
        self.last = last

    def usable(self, addr: Any) -> bool:
        if addr.version != self.version or addr not in self.subnet:
            return False
        if self.version == 6:  # the subnet-router anycast address is never a host's
            return addr != self.subnet.network_address
        return addr not in (self.subnet.network_address, self.subnet.broadcast_address)

    def request(self, owner: str, address: str | None = None) -> str:
        """Allocate ``address`` (or the next free one of the range) to ``owner``."""
        if address:
            addr = parse_address(address, "IP address", self.version)
            if not self.usable(addr):
                raise InvalidArgument(f"Invalid address {addr}: it does not belong to any of this network's subnets")
            key = str(addr)
            if self.allocated.get(key, owner) != owner:
                raise Conflict(f"Address already in use: {addr}")
            self.allocated[key] = owner
            return key
        # integers, not a list of address objects: a /16 has 65,534 of them
        first, last = int(self.range.network_address), int(self.range.broadcast_address)
        size = last - first + 1
        start = int(ipaddress.ip_address(self.last)) + 1 if self.last else first
        if not first <= start <= last:
            start = first
        kind = ipaddress.IPv4Address if self.version == 4 else ipaddress.IPv6Address
        for i in range(min(size, 1 << 20)):  # a /64 is never walked whole: it never fills up
            a = kind(first + (start - first + i) % size)
            if str(a) not in self.allocated and self.usable(a):
                self.allocated[str(a)] = owner
                self.last = str(a)
                return str(a)
        raise Unavailable(f"no available IPv{self.version} addresses on network range {self.range}")

    def release(self, owner: str) -> None:
        for key in [k for k, v in self.allocated.items() if v == owner]:
            del self.allocated[key]
