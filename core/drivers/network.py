"""Network drivers (``dockyard.network``): what a network *is* on the host, and how a
container's network namespace is wired into it.

The networks service (``dockyard.networks``) owns the records, IPAM and the container
network namespaces; a driver only touches the host: links, addresses, routes, firewall.
The service creates a container's namespace (an nsfs bind mount under
``<exec-root>/netns/<container id>``, with ``lo`` already up) *before* it calls
:meth:`NetworkDriver.join`, and removes it *after* the last :meth:`NetworkDriver.leave`.

Every address is chosen by the service's IPAM before the driver sees it: a driver never
allocates. Records are plain dataclasses that the service persists as JSON; drivers may keep
their own small values in ``Network.driver_state`` / ``Endpoint.driver_state`` (persisted with
the record, given back on every later call and to :meth:`reconcile`).

Methods are synchronous and may block for a few milliseconds (netlink, nftables); the
service calls them in a worker thread. A failed method leaves nothing half-done (what it
created is removed) and raises a :class:`dockyard.errors.DockyardError`. ``leave``,
``delete`` and ``unpublish`` tolerate what is already gone.

Drivers are constructed like every driver (``cls(config=dict, root=Path, state=Path)``) and
may define a classmethod ``check()`` raising :class:`dockyard.errors.SkipPlugin`. The service
passes ``config["instance"]``: a short string, empty for the default data root, that
distinguishes daemons with different data roots; a driver puts it in every host-wide name it
makes (bridge devices, nftables tables) so parallel daemons never touch each other's.

Docker's predefined networks map to drivers ``bridge`` (network ``bridge``), ``host``
(network ``host``: the daemon's own namespace, nothing to wire) and ``null`` (network ``none``:
a namespace with ``lo`` only).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass
class Network:
    """One network as the service persists it (``<data-root>/network/networks/<id>.json``)."""

    id: str  # 64 hex
    name: str
    driver: str  # "bridge", "host", "null", ...
    subnet: str = ""  # "172.18.0.0/16"; empty for host/null
    gateway: str = ""  # "172.18.0.1" (the bridge's own address)
    ip_range: str = ""  # dynamic allocations come from here (default: the whole subnet)
    internal: bool = False  # no outbound NAT, no traffic leaving the network
    attachable: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    # Docker's driver options, e.g. "com.docker.network.bridge.name",
    # "com.docker.network.driver.mtu", "com.docker.network.bridge.enable_ip_masquerade"
    options: dict[str, str] = field(default_factory=dict)
    created_ns: int = 0
    predefined: bool = False  # bridge, host, none: cannot be removed (Docker's 403)
    driver_state: dict[str, Any] = field(default_factory=dict)  # the driver's own, e.g. {"bridge": "dockyard0"}
    aux_addresses: dict[str, str] = field(default_factory=dict)  # IPAM AuxiliaryAddresses: reserved, never handed out
    ipam_options: dict[str, str] | None = field(default_factory=dict)  # IPAM.Options as the client sent them
    # IPv6 (EnableIPv6): a second subnet on the same bridge, its gateway on the bridge too
    enable_ipv6: bool = False
    subnet6: str = ""  # "fd00:db8:1::/64"
    gateway6: str = ""  # "fd00:db8:1::1"
    ip_range6: str = ""


@dataclass
class Endpoint:
    """One container's attachment to one network."""

    id: str  # 64 hex (Docker's EndpointID)
    network_id: str
    container_id: str
    netns: str  # path of the container's network namespace (an nsfs bind mount)
    ifname: str  # name inside the namespace: eth0, eth1, ... (hot-plugged ones get the next)
    address: str = ""  # "172.18.0.2/16": address with the network's prefix length; "" for host/null
    gateway: str = ""  # default route via this address (only for the first endpoint, eth0)
    mac: str = ""  # chosen by the service (Docker's 02:42:<ip bytes>)
    mtu: int = 1500
    aliases: list[str] = field(default_factory=list)  # DNS names on user networks (DNS engineer)
    default_route: bool = True  # set the default route via ``gateway`` (eth0 only)
    link_local: list[str] = field(default_factory=list)  # more addresses ("169.254.8.8/16"): LinkLocalIPs
    address6: str = ""  # "fd00:db8:1::2/64" on networks with IPv6 ("" otherwise)
    gateway6: str = ""  # IPv6 default route via this address: set only on the endpoint that carries it
    driver_state: dict[str, Any] = field(default_factory=dict)  # the driver's own, e.g. {"host_ifname": "dyv..."}


@dataclass
class PortBinding:
    """One published port (the ports engineer's seam; see :meth:`NetworkDriver.publish`)."""

    container_port: int
    protocol: str  # "tcp" | "udp"
    host_ip: str  # "" or "0.0.0.0" = all addresses
    host_port: int  # 0 = pick a free one
    host_port_end: int = 0  # > host_port: pick a free one of host_port..host_port_end (-p 8000-8010:80)


@runtime_checkable
class NetworkDriver(Protocol):
    name: str  # Docker's driver name: "bridge", "host", "null"
    scope: str  # "local"

    def create(self, net: Network) -> None:
        """Make the network exist on the host (bridge device with the gateway address, its
        firewall rules: masquerade unless ``internal``, isolation from the other networks,
        FORWARD accepts). May fill ``net.driver_state`` (the service saves it afterwards).
        Invalid options are ``InvalidArgument`` with nothing created."""
        ...

    def delete(self, net: Network) -> None:
        """Remove everything :meth:`create` made. The service only calls it when no endpoint
        is left. Missing parts are fine."""
        ...

    def join(self, net: Network, ep: Endpoint) -> None:
        """Wire ``ep`` into its container's namespace ``ep.netns``: a veth pair whose host end
        joins the network's bridge and whose peer is moved into the namespace as ``ep.ifname``
        with ``ep.address``, ``ep.mac``, ``ep.mtu``, up, and (if ``ep.default_route``) a default
        route via ``ep.gateway``. Works for a running container too (hot-plug). May fill
        ``ep.driver_state``."""
        ...

    def leave(self, net: Network, ep: Endpoint) -> None:
        """Undo :meth:`join` (the host end of the veth is deleted, which removes the peer).
        The namespace itself belongs to the service. Missing parts are fine."""
        ...

    def reconcile(self, nets: list[Network], endpoints: list[Endpoint]) -> None:
        """Daemon start (and repair): make the host match the records exactly. Re-create missing
        bridges and rules of ``nets``; remove this driver instance's links and rules that belong
        to no record (stale networks, veths of endpoints not in ``endpoints``). Never touches
        what another daemon instance (another ``config["instance"]``) made."""
        ...

    def close(self, nets: list[Network], in_use: bool) -> None:
        """Daemon shutdown. ``in_use`` False (no container runs): remove everything from the host
        (bridges, rules); :meth:`reconcile` re-creates it at the next start. ``in_use`` True
        (live-restore): leave everything as it is."""
        ...


# -- optional capabilities (class attribute ``capabilities``; see dockyard.drivers.contracts) --


@runtime_checkable
class ValidatingNetwork(Protocol):
    """``validate``: bad options are a 400 before anything exists."""

    def validate(self, net: Network) -> None:
        """Called before a network is created; raises ``InvalidArgument`` (``create`` must
        check them too)."""
        ...


@runtime_checkable
class ForgettingNetwork(Protocol):
    """``forget``: a cheap ``leave`` for a container that has exited."""

    def forget(self, net: Network, ep: Endpoint) -> None:
        """Called instead of ``leave`` when the container has exited and the service is about
        to unpin its namespace. The kernel removes the namespace's links (and a veth's host end
        with them) on its own, so a driver only drops its per-endpoint host state here and need
        not wait for the links to go."""
        ...


@runtime_checkable
class PortPublisher(Protocol):
    """``ports``: published ports (``-p``). The service calls ``publish`` right after ``join``
    of a container's first endpoint on the network when the container has port bindings, and
    ``unpublish`` right before ``leave``. A driver keeps its port rules in its own
    chains/tables so that :meth:`NetworkDriver.reconcile` of the network firewall never drops
    them. Without this capability, port bindings on the driver's networks are ignored (as
    Docker does for ``host``/``none``)."""

    def publish(self, net: Network, ep: Endpoint, ports: list[PortBinding]) -> list[PortBinding]:
        """Make ``ports`` reachable; return them with the host ports actually used."""
        ...

    def unpublish(self, net: Network, ep: Endpoint) -> None:
        """Remove what ``publish`` made for ``ep``; missing is fine."""
        ...


NETWORK_CAPABILITIES: dict[str, type | None] = {
    "validate": ValidatingNetwork,
    "forget": ForgettingNetwork,
    "ports": PortPublisher,
}
