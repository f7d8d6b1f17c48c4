"""The ``bridge`` network driver: a Linux bridge per network, a veth pair per endpoint.

Names on the host (15 characters at most):

* bridges: the network's ``com.docker.network.bridge.name`` option (the service names the
  default network's ``dockyard0``, or ``dy<instance>-br0`` for other data roots), else
  ``dy-<12 hex of the network id>``;
* host ends of veths: ``dyv<12 hex of the endpoint id>``.

The driver remembers the bridges it makes in ``<root>/bridges.json``, *before* it makes them
(an intent), so that reconcile can remove a stale one (a network whose record was never
written because the daemon was killed mid-create) without ever touching another daemon's.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import logging
import os
import socket
import threading
from pathlib import Path
from typing import Any

from dockyard.drivers.network import Endpoint, Network, PortBinding
from dockyard.errors import Conflict, DockyardError, InvalidArgument, SkipPlugin
from dockyard.networks import netns
from dockyard.crashpoints import crashpoint
from dockyard.store import read_json, remove_stale_temps, write_json

from . import firewall, rtnl
from dockyard.nftables import Nft
from .ports import PortPublisher

log = logging.getLogger("dockyard.net_bridge")

BRIDGE_NAME_OPT = "com.docker.network.bridge.name"
MTU_OPT = "com.docker.network.driver.mtu"
MASQ_OPT = "com.docker.network.bridge.enable_ip_masquerade"
KNOWN_OPTS = {BRIDGE_NAME_OPT, MTU_OPT, MASQ_OPT, "com.docker.network.bridge.enable_icc",
              "com.docker.network.bridge.host_binding_ipv4", "com.docker.network.bridge.default_bridge",
              "com.docker.network.enable_ipv6"}


def _index(name: str) -> int | None:
    """A link's index by name (no netlink socket, no pyroute2)."""
    return rtnl.index_of(name)


def host_ifname(ep: Endpoint) -> str:
    return "dyv" + ep.id[:12]


class BridgeDriver:
    name = "bridge"
    scope = "local"
    #: optional contracts (dockyard.drivers.network)
    capabilities = frozenset({"validate", "forget", "ports"})

    @classmethod
    def check(cls) -> None:
        if os.geteuid() != 0:
            raise SkipPlugin("the bridge driver needs root")
        import importlib.util

        if importlib.util.find_spec("pyroute2") is None:  # the package's dependency (bridges use rtnl.py)
            raise SkipPlugin("pyroute2 is missing")

    def __init__(self, config: dict[str, Any], root: Path, state: Path) -> None:
        self.instance = str(config.get("instance") or "")
        self.table = "dockyard" + (f"_{self.instance}" if self.instance else "")
        self.root = root
        self.known_path = root / "bridges.json"
        remove_stale_temps(root, {"bridges.json", "published-ports.json"})  # a write cut by kill -9
        self.nft = Nft()
        self.accepts = firewall.ForwardAccepts(self.nft, self.table)
        self.accepts6 = firewall.ForwardAccepts(self.nft, self.table, "ip6")  # IPv6 networks' bridges
        self.lock = threading.RLock()  # one change of links and rules at a time
        self.nets: dict[str, Network] = {}  # what the firewall is rendered from
        self.bridge_index: dict[str, int] = {}  # saves a netlink request per join
        # published ports: a table of their own; traffic from our bridges goes to the proxy
        self.ports = PortPublisher(root / "published-ports.json", f"{self.table}_ports", ["dy*", "dockyard*"],
                                   nft=self.nft, loopback_dnat=True)
        enable_ip_forward()

    # -- names and options ----------------------------------------------------------------

    def bridge_name(self, net: Network) -> str:
        return net.driver_state.get("bridge") or net.options.get(BRIDGE_NAME_OPT) or f"dy-{net.id[:12]}"

    @staticmethod
    def mtu(net: Network) -> int:
        try:
            mtu = int(net.options.get(MTU_OPT) or 1500)
        except ValueError:
            raise InvalidArgument(f"invalid MTU {net.options.get(MTU_OPT)!r}") from None
        if not 68 <= mtu <= 65535:
            raise InvalidArgument(f"invalid MTU {mtu}: must be between 68 and 65535")
        return mtu

    def _rules(self, net: Network) -> firewall.NetRules:
        masq = str(net.options.get(MASQ_OPT, "true")).lower() not in ("false", "0", "no")
        subnet6 = net.subnet6 if getattr(net, "enable_ipv6", False) else ""
        return firewall.NetRules(self.bridge_name(net), net.subnet, net.internal, masq, subnet6)

    def _apply_firewall(self) -> None:
        nets = sorted(self.nets.values(), key=lambda n: n.created_ns)
        firewall.apply(self.nft, self.table, [self._rules(n) for n in nets])
        self.accepts.sync([self.bridge_name(n) for n in nets])
        self.accepts6.sync([self.bridge_name(n) for n in nets if getattr(n, "enable_ipv6", False)])
        if any(getattr(n, "enable_ipv6", False) and not n.internal for n in nets):
            enable_ip6_forward()
        # after the table (it drops 127/8 from the bridges): published ports DNAT 127.0.0.1 too
        for n in nets:
            if not route_localnet(self.bridge_name(n)):
                self.ports.no_loopback_dnat()

    def _known(self) -> set[str]:
        return set(read_json(self.known_path, []))

    def _remember(self, bridges: set[str]) -> None:
        write_json(self.known_path, sorted(bridges), sync=False)

    # -- networks ---------------------------------------------------------------------------

    def validate(self, net: Network) -> None:
        """Bad options are a 400 before anything exists."""
        unknown = [k for k in net.options if k.startswith("com.docker.network.") and k not in KNOWN_OPTS]
        if unknown:
            raise InvalidArgument(f"unsupported bridge driver option {unknown[0]!r}")
        self.mtu(net)
        name = self.bridge_name(net)
        if len(name) > 15 or not name or "/" in name or " " in name:
            raise InvalidArgument(f"invalid bridge name {name!r}: at most 15 characters, no '/' or spaces")
        if not net.subnet or not net.gateway:
            raise InvalidArgument("a bridge network needs a subnet and a gateway")

    def create(self, net: Network) -> None:
        self.validate(net)
        name = self.bridge_name(net)
        with self.lock:
            if not net.predefined and _index(name) is not None and name not in self._known():
                raise Conflict(f"bridge device {name} already exists on the host")
            iface = ipaddress.IPv4Interface(f"{net.gateway}/{ipaddress.ip_network(net.subnet).prefixlen}")
            try:
                iface6 = gateway6(net)
                # the intent first: a daemon killed between the two finds a remembered name with
                # no link (nothing to do), never a link nobody remembers (a leak for good)
                self._remember(self._known() | {name})
                if not net.predefined:  # user networks (the default one is made at a start)
                    crashpoint("bridge.create.remembered")
                self._ensure_bridge(name, iface, self.mtu(net), iface6)
                if not net.predefined:
                    crashpoint("bridge.create.link")
                net.driver_state["bridge"] = name
                self.nets[net.id] = net
                self._apply_firewall()
            except BaseException:
                self.nets.pop(net.id, None)
                self._delete_bridge(name)
                raise

    def _ensure_bridge(self, name: str, iface: ipaddress.IPv4Interface, mtu: int,
                       iface6: ipaddress.IPv6Interface | None = None) -> None:
        if _index(name) is None:
            rtnl.add_bridge(name, mtu)
        idx = _index(name)
        if idx is None:
            raise DockyardError(f"bridge {name} vanished while it was set up")
        have = {(a, p) for a, p, _ in rtnl.addresses(idx, socket.AF_INET)}
        if (str(iface.ip), iface.network.prefixlen) not in have:
            rtnl.add_address(idx, socket.AF_INET, str(iface.ip), iface.network.prefixlen)
        # global IPv6 addresses other than the gateway are an older one (the default bridge after
        # a change of the daemon's ipv6 / fixed-cidr-v6): removed (link-local ones stay)
        have6 = {(a, p) for a, p, scope in rtnl.addresses(idx, socket.AF_INET6) if scope == 0}
        for address, prefixlen in have6:
            if iface6 is None or (address, prefixlen) != (str(iface6.ip), iface6.network.prefixlen):
                with contextlib.suppress(Exception):
                    rtnl.del_address(idx, socket.AF_INET6, address, prefixlen)
        if iface6 is not None:  # the IPv6 gateway, without duplicate address detection: usable at once
            _sysctl6(name, "disable_ipv6", "0")
            if (str(iface6.ip), iface6.network.prefixlen) not in have6:
                rtnl.add_address(idx, socket.AF_INET6, str(iface6.ip), iface6.network.prefixlen, rtnl.IFA_F_NODAD)
        rtnl.set_up(idx)
        self.bridge_index[name] = idx

    def _delete_bridge(self, name: str) -> None:
        self.bridge_index.pop(name, None)
        idx = _index(name)
        if idx is not None:
            try:
                rtnl.del_link(idx)
            except Exception as exc:  # gone meanwhile
                log.debug("deleting bridge %s: %s", name, exc)
        self._remember(self._known() - {name})

    def delete(self, net: Network) -> None:
        name = self.bridge_name(net)
        with self.lock:
            self.nets.pop(net.id, None)
            self._apply_firewall()
            self._delete_bridge(name)

    # -- endpoints ----------------------------------------------------------------------------

    def join(self, net: Network, ep: Endpoint) -> None:
        if not ep.address:
            raise InvalidArgument("a bridge endpoint needs an address")
        iface = ipaddress.ip_interface(ep.address)
        veth = host_ifname(ep)
        name = self.bridge_name(net)
        # raw netlink batches (rtnl.py): one request for the pair, one for the inside
        for cached in (True, False):  # a cached bridge index may be stale (bridge re-made outside)
            if cached:
                bridge = self.bridge_index.get(name)
            else:
                bridge = _index(name)
            if bridge is None:
                if cached:
                    continue
                raise DockyardError(f"bridge {name} of network {net.name} is missing")
            try:
                rtnl.add_veth(veth, ep.mtu, bridge, ep.ifname, ep.netns, ep.mac)
                self.bridge_index[name] = bridge
                break
            except rtnl.RtnlError as exc:
                if not cached or exc.errno != errno.ENODEV:
                    raise DockyardError(f"creating the veth pair of {ep.container_id[:12]} on {name}: "
                                        f"{exc.strerror}") from None
                self.bridge_index.pop(name, None)
        gateway = ep.gateway if ep.default_route and ep.gateway else None
        address6 = ipaddress.ip_interface(ep.address6) if getattr(ep, "address6", "") else None
        gateway6_ = getattr(ep, "gateway6", "") or None  # set on the endpoint that routes IPv6 only

        def inside() -> None:  # in a thread in the container's namespace
            sock = rtnl.Socket()
            try:
                index = socket.if_nametoindex(ep.ifname)
                if address6 is not None:  # IPv6 on in this namespace and on the interface (Docker does too)
                    _sysctl6("all", "disable_ipv6", "0")
                    _sysctl6(ep.ifname, "disable_ipv6", "0")
                    _sysctl6(ep.ifname, "accept_dad", "0")
                rtnl.configure(sock, index, str(iface.ip), iface.network.prefixlen, gateway)
                if address6 is not None:
                    rtnl.configure6(sock, index, str(address6.ip), address6.network.prefixlen, gateway6_)
                if getattr(ep, "link_local", None):  # EndpointSettings.IPAMConfig.LinkLocalIPs
                    rtnl.add_addresses(sock, index, list(ep.link_local))
            finally:
                sock.close()

        try:
            netns.run_in(ep.netns, inside)
        except BaseException as exc:
            self._del_link(veth)
            if isinstance(exc, OSError):
                raise DockyardError(f"configuring {ep.ifname} of {ep.container_id[:12]}: {exc.strerror}") from None
            raise
        # no ep.driver_state: the host end's name is host_ifname(ep), so the service need not save it

    @staticmethod
    def _del_link(name: str) -> None:
        index = _index(name)
        if index is None:
            return  # already gone
        try:
            rtnl.del_link(index)
        except Exception as exc:  # gone meanwhile
            log.debug("deleting %s: %s", name, exc)

    def leave(self, net: Network, ep: Endpoint) -> None:
        self._del_link(ep.driver_state.get("host_ifname") or host_ifname(ep))

    def forget(self, net: Network, ep: Endpoint) -> None:
        """The container is gone and its namespace is about to be unpinned: the kernel deletes
        the veth pair with the namespace, without making us wait for it (an explicit delete
        waits ~20 ms for an RCU grace period). The bridge keeps no other per-endpoint state."""

    # -- published ports (ports.py) ---------------------------------------------------------

    def publish(self, net: Network, ep: Endpoint, ports: list[PortBinding]) -> list[PortBinding]:
        address6 = getattr(ep, "address6", "")
        return self.ports.publish(ep.container_id, ep.address.split("/")[0], ports, address6.split("/")[0])

    def unpublish(self, net: Network, ep: Endpoint) -> None:
        self.ports.unpublish(ep.container_id)

    # -- startup, shutdown ----------------------------------------------------------------

    def reconcile(self, nets: list[Network], endpoints: list[Endpoint]) -> None:
        with self.lock:
            self.nets = {n.id: n for n in nets}
            wanted = {self.bridge_name(n) for n in nets}
            for name in self._known() - wanted:
                log.info("removing stale bridge %s", name)
                self._delete_bridge(name)
            for n in nets:
                name = self.bridge_name(n)
                iface = ipaddress.IPv4Interface(f"{n.gateway}/{ipaddress.ip_network(n.subnet).prefixlen}")
                self._ensure_bridge(name, iface, self.mtu(n), gateway6(n))
                n.driver_state["bridge"] = name
            self._remember(wanted)
            nets_by_id = {n.id: n for n in nets}
            for e in endpoints:  # a running container's link that went missing is wired again
                net = nets_by_id.get(e.network_id)
                if net is not None and _index(host_ifname(e)) is None and Path(e.netns).exists():
                    log.info("re-creating the missing veth of container %s on %s", e.container_id[:12], net.name)
                    try:
                        self.join(net, e)
                    except Exception as exc:
                        log.warning("re-creating the veth of %s failed: %s", e.container_id[:12], exc)
            live = {host_ifname(e) for e in endpoints}
            bridge_idx = {i for i in (_index(name) for name in wanted) if i is not None}
            for _, name, master in rtnl.links():
                if name.startswith("dyv") and master in bridge_idx and name not in live:
                    log.info("removing stale veth %s", name)
                    self._del_link(name)
            self._apply_firewall()
        targets: dict[str, set[str]] = {}
        for e in endpoints:
            targets.setdefault(e.container_id, set()).add(e.address.split("/")[0])
            if getattr(e, "address6", ""):
                targets[e.container_id].add(e.address6.split("/")[0])
        self.ports.restore(targets)

    def close(self, nets: list[Network], in_use: bool) -> None:
        if in_use:
            self.ports.close()
            return
        self.ports.remove_all()
        with self.lock:
            self.nets = {}
            firewall.remove(self.nft, self.table)
            self.accepts.sync([])
            self.accepts6.sync([])
            for name in self._known() | {self.bridge_name(n) for n in nets}:
                self._delete_bridge(name)


def route_localnet(bridge: str) -> bool:
    """Let 127/8 be routed out of ``bridge`` (this bridge only, never ``all``), so a published
    port DNATs traffic to 127.0.0.1 in the kernel instead of the userland proxy. Safe because
    the firewall table drops 127/8 arriving from the bridge (dockerd does the same when its
    userland proxy is off). The setting goes away with the bridge."""
    path = Path(f"/proc/sys/net/ipv4/conf/{bridge}/route_localnet")
    try:
        if path.read_text().strip() != "1":
            path.write_text("1\n")
        return True
    except OSError as exc:
        log.warning("cannot set route_localnet on %s (127.0.0.1 goes through the proxy): %s", bridge, exc)
        return False


def gateway6(net: Network) -> ipaddress.IPv6Interface | None:
    """The bridge's IPv6 address (the network's IPv6 gateway with its prefix), if it has IPv6."""
    if not getattr(net, "enable_ipv6", False) or not net.subnet6 or not net.gateway6:
        return None
    return ipaddress.IPv6Interface(f"{net.gateway6}/{ipaddress.ip_network(net.subnet6).prefixlen}")


def _sysctl6(ifname: str, key: str, value: str) -> None:
    """``net.ipv6.conf.<ifname>.<key>`` in the calling thread's network namespace."""
    path = Path(f"/proc/sys/net/ipv6/conf/{ifname}/{key}")
    try:
        if path.read_text().strip() != value:
            path.write_text(value + "\n")
    except OSError as exc:
        if ifname == "all" and key == "disable_ipv6":
            raise DockyardError(f"IPv6 is not available in this kernel ({path}: {exc.strerror})") from None
        log.warning("cannot set %s to %s: %s", path, value, exc)


def enable_ip6_forward() -> None:
    """Routing IPv6 between the bridges and the outside (NAT66) needs it; dockerd sets it too
    when a network has IPv6. Only then: hosts that take their IPv6 routes from router
    advertisements stop accepting them on interfaces whose ``accept_ra`` is 1."""
    path = Path("/proc/sys/net/ipv6/conf/all/forwarding")
    try:
        if path.read_text().strip() != "1":
            path.write_text("1\n")
            log.info("enabled net.ipv6.conf.all.forwarding (a network has IPv6)")
    except OSError as exc:
        log.warning("cannot enable net.ipv6.conf.all.forwarding: %s", exc)


def enable_ip_forward() -> None:
    """Routing between the bridges and the outside needs it (dockerd turns it on too)."""
    path = Path("/proc/sys/net/ipv4/ip_forward")
    try:
        if path.read_text().strip() != "1":
            path.write_text("1\n")
            log.info("enabled net.ipv4.ip_forward")
    except OSError as exc:
        log.warning("cannot enable net.ipv4.ip_forward: %s", exc)
