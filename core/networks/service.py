"""The networks service: network records, IPAM, and each container's network namespace.

* Records: one JSON file per network under ``<data-root>/networks`` (:class:`NetRecord`),
  holding the network, its address allocations and its endpoints. Allocations are saved
  before a driver uses them.
* Drivers (``dockyard.network``) only touch the host; they are loaded on first use by name
  (``bridge`` from the net_bridge plugin, ``host`` and ``null`` built in).
* Crashes: a network is made on the host first, then its record is written. A driver records
  what it is about to make before it makes it (net_bridge: ``bridges.json``), so after a
  ``kill -9`` in between, :meth:`reconcile` hands the driver the records and the driver removes
  whatever of its own has none. Removal goes the other way (host first, then the record): a
  crash leaves the network, whose links reconcile makes again.
* A container gets its network namespace at start (:meth:`setup`): pinned at
  ``<exec-root>/netns/<container id>``, ``lo`` up, one endpoint per network it is connected
  to; the runtime joins that path. On exit (and on remove, and in reconcile for what ended
  while the daemon was down) :meth:`teardown` removes endpoints, allocations and the namespace.

Seams for published ports and name resolution (the ports+DNS work) are marked ``SEAM``.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import hashlib
import logging
import os
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .. import filters as F
from ..crashpoints import crashpoint
from ..drivers import contracts
from ..drivers.network import Endpoint, Network
from ..errors import (
    ConfigError, Conflict, DockyardError, Forbidden, InvalidArgument, NoSuchNetwork, NotFound, PluginError, Unavailable,
)
from ..store import remove_stale_temps
from . import ipam, netns, publishing  # dns: by the first container with a resolver (idle memory)
from .record import NetRecord


if TYPE_CHECKING:
    from ..containers.service import ContainerService
    from ..daemon import Daemon
    from .dns import EmbeddedDNS

log = logging.getLogger("dockyard.networks")

PREDEFINED = {"bridge": "bridge", "host": "host", "none": "null"}  # name -> driver
LIST_FILTERS = ("driver", "id", "label", "name", "scope", "type", "dangling")
PRUNE_FILTERS = ("label", "label!", "until")
DEFAULT_BRIDGE = "dockyard0"


def instance_of(data_root: Path) -> str:
    """'' for the default data root, else 8 hex of it: keeps test daemons' host-wide names apart."""
    from ..config import DaemonConfig

    if data_root == DaemonConfig.data_root:
        return ""
    return hashlib.sha256(str(data_root.resolve()).encode()).hexdigest()[:8]


def mac_for(ip: str) -> str:
    """Docker's MAC scheme: 02:42 then the four bytes of the IPv4 address."""
    return "02:42:" + ":".join(f"{int(b):02x}" for b in ip.split("."))


def endpoint_settings(net: Network, cfg: dict[str, Any] | None = None) -> dict[str, Any]:
    """Docker's ``EndpointSettings`` before the container runs (no address yet)."""
    cfg = cfg or {}
    return {
        "IPAMConfig": cfg.get("IPAMConfig") or None,
        "Links": cfg.get("Links") or None,
        "Aliases": cfg.get("Aliases") or None,
        "MacAddress": cfg.get("MacAddress") or "",  # the requested one (containers/options.py checks it)
        "DriverOpts": cfg.get("DriverOpts") or None,
        "NetworkID": net.id,
        "EndpointID": "",
        "Gateway": "",
        "IPAddress": "",
        "IPPrefixLen": 0,
        "IPv6Gateway": "",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "DNSNames": None,
    }


def link_local_addresses(settings: dict[str, Any]) -> list[str]:
    """``IPAMConfig.LinkLocalIPs`` as interface addresses: /16 for IPv4, /64 for IPv6 (moby's
    ``linkLocalMask``)."""
    import ipaddress

    out = []
    for text in (settings.get("IPAMConfig") or {}).get("LinkLocalIPs") or []:
        addr = ipaddress.ip_address(text)
        out.append(f"{addr}/{16 if addr.version == 4 else 64}")
    return out


def _split_ipam_configs(configs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``IPAM.Config`` entries by address family (of the subnet, else of the gateway or range)."""
    import ipaddress

    v4: list[dict[str, Any]] = []
    v6: list[dict[str, Any]] = []
    for cfg in configs:
        text = cfg.get("Subnet") or cfg.get("Gateway") or cfg.get("IPRange") or ""
        try:
            version = ipaddress.ip_network(text, strict=False).version if text else 4
        except ValueError:
            version = 4  # the IPv4 path names the bad value
        (v6 if version == 6 else v4).append(cfg)
    return v4, v6


class NetworkService:
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        config = daemon.config
        self.root: Path = config.data_root / "networks"
        self.root.mkdir(parents=True, exist_ok=True)
        self.netns_dir: Path = config.exec_root / "netns"
        self.instance = instance_of(config.data_root)
        self.events = daemon.events
        self.records: dict[str, NetRecord] = {}
        self.drivers: dict[str, Any] = {}
        self.lock = asyncio.Lock()  # IPAM and records
        self._dns: EmbeddedDNS | None = None  # made by the first use of :attr:`dns`

    @property
    def dns(self) -> EmbeddedDNS:
        """127.0.0.11 in containers on user networks (dns.py), imported and made at first use."""
        if self._dns is None:
            from .dns import EmbeddedDNS

            self._dns = EmbeddedDNS(self)
        return self._dns

    # -- drivers ----------------------------------------------------------------------------

    def driver(self, name: str) -> Any:
        if name not in self.drivers:
            c = self.daemon.config
            try:
                self.drivers[name] = self.daemon.plugins.load_driver(
                    "network", name, config={"instance": self.instance}, root=c.data_root, state=c.exec_root)
            except PluginError as exc:
                raise NotFound(f'plugin "{name}" not found ({exc})') from None
        return self.drivers[name]

    def capable(self, name: str, capability: str) -> bool:
        """Whether network driver ``name`` has an optional capability (its load-time record)."""
        return contracts.record("network", self.driver(name)).has(capability)

    async def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """A driver method, in a worker thread (drivers block on netlink and nftables)."""
        return await asyncio.to_thread(fn, *args)

    # -- lookup -----------------------------------------------------------------------------

    def get(self, ref: str) -> NetRecord:
        """By full id, name, or unique id prefix (Docker's order)."""
        if ref in self.records:
            return self.records[ref]
        for rec in self.records.values():
            if rec.name == ref:
                return rec
        found = [r for rid, r in self.records.items() if ref and rid.startswith(ref)]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise InvalidArgument(f"network {ref} is ambiguous ({len(found)} matches found based on ID prefix)")
        raise NoSuchNetwork(ref)

    def _by_name(self, name: str) -> NetRecord | None:
        return next((r for r in self.records.values() if r.name == name), None)

    def _save(self, rec: NetRecord, durable: bool = True) -> None:
        """Durable (fsynced) for what defines a network (create, reconcile). Endpoints and
        allocations are saved before use but not fsynced (see ``_join``): they only matter
        while their containers run, which no power loss survives. The file is replaced by
        rename, so a crash leaves the old or the new record, never a mix."""
        rec.save(self.root, sync=durable)

    def _emit(self, action: str, actor_id: str, *, driver: str = "", **attrs: str) -> None:
        """A ``network`` event; Docker's attribute ``type`` is the driver (``emit`` takes ``type`` itself)."""
        from ..events import Event

        attributes = {k: str(v) for k, v in attrs.items()}
        if driver:
            attributes["type"] = driver
        self.events.publish(Event("network", action, actor_id, attributes))

    # -- startup --------------------------------------------------------------------------

    def load(self) -> None:
        """Read the records (before containers reconcile: their teardown needs them), after
        removing the temp files of record writes a killed daemon did not finish."""
        remove_stale_temps(self.root)
        for path in sorted(self.root.glob("*.json")):
            try:
                rec = NetRecord.load(path)
            except (ValueError, TypeError, KeyError) as exc:
                log.warning("ignoring unreadable network record %s: %s", path.name, exc)
                continue
            if rec is not None:
                self.records[rec.id] = rec

    async def reconcile(self, running: set[str]) -> None:
        """After containers reconciled: drop endpoints and namespaces of containers that do not
        run, make sure the predefined networks exist, and let each driver make the host match."""
        async with self.lock:
            for rec in self.records.values():
                stale = [e for e in rec.endpoints.values() if e.container_id not in running]
                for ep in stale:
                    log.info("removing stale endpoint of container %s on network %s", ep.container_id[:12], rec.name)
                    rec.pool().release(ep.id)
                    del rec.endpoints[ep.id]
                if stale:
                    self._save(rec)
        for path in netns.mounted_under(self.netns_dir):
            if path.name not in running:
                log.info("removing stale network namespace %s", path)
                await asyncio.to_thread(netns.remove, path)
        await self._ensure_predefined()
        by_driver: dict[str, list[NetRecord]] = {}
        for rec in self.records.values():
            by_driver.setdefault(rec.net.driver, []).append(rec)
        for name, recs in by_driver.items():
            try:
                drv = self.driver(name)
            except DockyardError as exc:
                log.warning("networks of driver %s are unavailable: %s", name, exc)
                continue
            nets = [r.net for r in recs]
            eps = [e for r in recs for e in r.endpoints.values()]
            try:
                await asyncio.to_thread(drv.reconcile, nets, eps)
            except Exception:  # the daemon still starts; the networks of this driver may not work
                log.exception("reconciling the networks of driver %s failed", name)
            for rec in recs:
                self._save(rec)
        if running:  # a resolver again for each running container that had one
            from . import dns

            await dns.restore(self)

    async def _ensure_predefined(self) -> None:
        for name, driver in PREDEFINED.items():
            if (existing := self._by_name(name)) is not None:
                if name != "bridge":
                    continue
                if await self._default_bridge_bip(existing):  # else: made again below with the new bip
                    self._default_bridge_ipv6(existing)
                    continue
            reused = getattr(self, "_bridge_id", None) if name == "bridge" else None  # a bridge moved by bip
            net = Network(id=reused or secrets.token_hex(32), name=name, driver=driver, created_ns=time.time_ns(),
                          predefined=True)
            if driver == "bridge":
                try:
                    self.driver("bridge")
                except DockyardError as exc:
                    log.warning("no default bridge network (%s): containers get a namespace with lo only", exc)
                    continue
                net.options = {
                    "com.docker.network.bridge.default_bridge": "true",
                    "com.docker.network.bridge.enable_icc": "true",
                    "com.docker.network.bridge.enable_ip_masquerade": "true",
                    "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
                    "com.docker.network.bridge.name": f"dy{self.instance}-br0" if self.instance else DEFAULT_BRIDGE,
                    "com.docker.network.driver.mtu": "1500",
                }
                rec = NetRecord(net)
                bip = getattr(self.daemon.config, "bip", None)
                subnet = None
                if bip:  # dockerd's bip: the bridge's address and prefix
                    iface = ipam.ipaddress.IPv4Interface(bip)  # config.py checked it is IPv4
                    self._check_bip(iface, rec)
                    subnet = iface.network
                    net.subnet, net.gateway = str(subnet), str(iface.ip)
                    rec.allocated[net.gateway] = "gateway"
                try:
                    self._default_bridge_ipv6(rec)
                    await self._create_on_host(rec, subnet)
                except DockyardError as exc:
                    log.warning("cannot create the default bridge network: %s", exc)
            else:
                rec = NetRecord(net)
                self.records[net.id] = rec
                self._save(rec)

    async def _default_bridge_bip(self, rec: NetRecord) -> bool:
        """dockerd's ``bip`` on a default bridge made before: kept if it matches (or no bip is
        set and the bridge has a subnet); made again (False) when the bip changed and no container
        uses it; with containers on it, kept with a warning until they are gone."""
        bip = getattr(self.daemon.config, "bip", None)
        net = rec.net
        if not bip:
            return True
        iface = ipam.ipaddress.ip_interface(bip)
        if net.subnet == str(iface.network) and net.gateway == str(iface.ip):
            return True
        self._check_bip(iface, rec)
        if rec.endpoints:
            log.warning("bip %s: the default bridge keeps %s (gateway %s) while containers use it; "
                        "restart the daemon once they are removed", bip, net.subnet, net.gateway)
            return True
        try:
            drv = self.driver(net.driver)
        except DockyardError:
            return True  # no bridge driver: nothing to move
        log.info("bip %s: the default bridge moves from %s (gateway %s)", bip, net.subnet, net.gateway)
        await asyncio.to_thread(drv.delete, net)
        (self.root / f"{rec.id}.json").unlink(missing_ok=True)
        self.records.pop(net.id, None)
        self._bridge_id = net.id  # the same id again: stopped containers still name it
        return False

    def _check_bip(self, iface: Any, bridge: NetRecord) -> None:
        """A ``bip`` that overlaps another network of this daemon stops the start, as in dockerd."""
        for other in self.records.values():
            if other is bridge or other.net.id == bridge.net.id or not other.net.subnet:
                continue
            if ipam.ipaddress.ip_network(other.net.subnet).overlaps(iface.network):
                raise ConfigError(f"bip {iface}: overlaps network {other.name} ({other.net.subnet})")

    def _default_bridge_ipv6(self, rec: NetRecord) -> None:
        """dockerd's ``ipv6`` and ``fixed-cidr-v6`` for the default bridge, applied at every start
        while no container uses it (the bridge driver's reconcile then puts the gateway on the
        bridge). Without ``fixed-cidr-v6`` the subnet is a /64 of the daemon's unique-local /48."""
        config = self.daemon.config
        want = bool(getattr(config, "ipv6", False))
        fixed = getattr(config, "fixed_cidr_v6", None) or ""
        net = rec.net
        if rec.endpoints or (want == net.enable_ipv6 and (not want or not fixed or fixed == net.subnet6)):
            return
        if net.gateway6:
            rec.allocated.pop(net.gateway6, None)
        net.enable_ipv6, net.subnet6, net.gateway6, net.ip_range6 = want, "", "", ""
        rec.last6 = ""
        if not want:
            return
        if fixed:
            subnet = ipam.ipaddress.ip_network(fixed)
            net.subnet6, net.gateway6 = str(subnet), str(subnet.network_address + 1)
            rec.allocated[net.gateway6] = "gateway"
        else:
            self._default_subnet6(rec)

    async def _create_on_host(self, rec: NetRecord, subnet: ipam.Net | None) -> None:
        """Pick a subnet (if none was given) and make the network exist; nothing is left on failure.
        The host-wide lock covers choosing and creating, so another daemon sees our route."""
        net = rec.net
        drv = self.driver(net.driver)
        validate = drv.validate if self.capable(net.driver, "validate") else None

        def create() -> None:
            with ipam.host_lock():
                if subnet is None:
                    start = int(self.instance, 16) if self.instance else 0
                    chosen = ipam.pick_subnet([ipam.ipaddress.IPv4Network(r.net.subnet) for r in self.records.values()
                                               if r.net.subnet], start,
                                              getattr(self.daemon.config, "default_address_pools", ()))
                    net.subnet = str(chosen)
                    net.gateway = str(next(chosen.hosts()))
                    rec.allocated[net.gateway] = "gateway"
                if net.enable_ipv6 and not net.subnet6:
                    self._default_subnet6(rec)
                if validate is not None:
                    validate(net)
                drv.create(net)

        await asyncio.to_thread(create)
        if not net.predefined:  # made on the host, no record yet: reconcile removes it
            crashpoint("network.create.record")
        try:
            self.records[net.id] = rec
            self._save(rec)
        except BaseException:
            self.records.pop(net.id, None)
            await asyncio.to_thread(drv.delete, net)
            raise

    # -- create, remove, prune ----------------------------------------------------------

    async def create(self, body: dict[str, Any]) -> tuple[NetRecord, str]:
        """``POST /networks/create``: (record, warning)."""
        if not isinstance(body, dict):
            raise InvalidArgument("network config must be a JSON object")
        name = body.get("Name")
        if not name or not isinstance(name, str):
            raise InvalidArgument("network name is required")
        driver = body.get("Driver") or "bridge"
        if driver in ("host", "null"):
            raise Forbidden(f'only one instance of "{"none" if driver == "null" else driver}" network is allowed')
        if body.get("EnableIPv4") is False:
            raise InvalidArgument("IPv6-only networks are not supported by this engine (EnableIPv4: false)")
        enable_ipv6 = bool(body.get("EnableIPv6"))
        ipv6_opt = str((body.get("Options") or {}).get("com.docker.network.enable_ipv6", "")).lower()
        if ipv6_opt in ("true", "1"):  # moby's netlabel.EnableIPv6 (`-o com.docker.network.enable_ipv6=true`)
            enable_ipv6 = True
        if body.get("Ingress") or body.get("ConfigOnly") or (body.get("ConfigFrom") or {}).get("Network"):
            raise InvalidArgument("swarm and config-only networks are not supported")
        labels = body.get("Labels") or {}
        options = body.get("Options") or {}
        for what, value in (("Labels", labels), ("Options", options)):
            if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
                raise InvalidArgument(f"{what} must be an object of strings")
        ipam_cfg = body.get("IPAM") or {}
        ipam_options = ipam_cfg.get("Options")
        if ipam_options is not None and (not isinstance(ipam_options, dict)
                                         or not all(isinstance(v, str) for v in ipam_options.values())):
            raise InvalidArgument("IPAM.Options must be an object of strings")
        if (ipam_cfg.get("Driver") or "default") != "default":
            raise InvalidArgument(f"IPAM driver {ipam_cfg.get('Driver')!r} is not supported: use 'default'")
        configs = ipam_cfg.get("Config") or []
        if not isinstance(configs, list) or not all(isinstance(c, dict) for c in configs):
            raise InvalidArgument("IPAM.Config must be a list of objects")
        configs4, configs6 = _split_ipam_configs(configs)
        if len(configs4) > 1 or len(configs6) > 1:
            raise InvalidArgument("at most one IPAM config per address family (one IPv4 and one IPv6 subnet) "
                                  "is supported")
        if configs6 and not enable_ipv6:
            raise InvalidArgument(f"IPv6 subnet {configs6[0].get('Subnet')} given but IPv6 is not enabled "
                                  "on the network (EnableIPv6, docker network create --ipv6)")
        async with self.lock:
            if self._by_name(name) is not None:
                raise Conflict(f"network with name {name} already exists")
            net = Network(id=secrets.token_hex(32), name=name, driver=driver, internal=bool(body.get("Internal")),
                          attachable=bool(body.get("Attachable")), labels=dict(labels), options=dict(options),
                          created_ns=time.time_ns(), ipam_options=ipam_options, enable_ipv6=enable_ipv6)
            self.driver(driver)  # an unknown driver is a 404 before anything else
            rec = NetRecord(net)
            subnet = self._ipam_config(rec, configs4[0] if configs4 else {})
            if enable_ipv6 and configs6:
                self._ipam_config6(rec, configs6[0])
            await self._create_on_host(rec, subnet)
        self._emit("create", net.id, name=net.name, driver=net.driver)
        return rec, ""

    def _ipam_config(self, rec: NetRecord, cfg: dict[str, Any]) -> ipam.Net | None:
        """Check a user's subnet/gateway/range (400 for nonsense, 409 for overlaps); fill the record."""
        net = rec.net
        if not isinstance(cfg, dict):
            raise InvalidArgument("IPAM.Config entries must be objects")
        subnet_s, gateway_s, range_s = cfg.get("Subnet") or "", cfg.get("Gateway") or "", cfg.get("IPRange") or ""
        aux = cfg.get("AuxiliaryAddresses") or cfg.get("AuxAddress") or {}
        if not isinstance(aux, dict) or not all(isinstance(v, str) for v in aux.values()):
            raise InvalidArgument("IPAM.Config.AuxiliaryAddresses must be an object of strings")
        if not subnet_s:
            if gateway_s or range_s:
                raise InvalidArgument("a gateway or IP range needs a subnet (IPAM.Config.Subnet)")
            for aux_name in aux:  # moby's ValidateIPAM
                raise InvalidArgument(f"invalid auxiliary address {aux_name}: parent subnet is required")
            return None
        subnet = ipam.parse_subnet(subnet_s)
        for other in self.records.values():
            if other.net.subnet and subnet.overlaps(ipam.ipaddress.ip_network(other.net.subnet)):
                raise Conflict(f"Pool overlaps with other one on this address space: {subnet} overlaps "
                               f"{other.net.subnet} of network {other.name}")
        if gateway_s:
            gateway = ipam.parse_address(gateway_s, "gateway")
            if gateway not in subnet or gateway in (subnet.network_address, subnet.broadcast_address):
                raise InvalidArgument(f"Invalid gateway {gateway_s}: it does not belong to subnet {subnet}")
        else:
            gateway = next(subnet.hosts())
        if range_s:
            rng = ipam.parse_subnet(range_s)
            if not rng.subnet_of(subnet):
                raise InvalidArgument(f"Invalid IP range {range_s}: it is not inside subnet {subnet}")
            net.ip_range = str(rng)
        net.subnet, net.gateway = str(subnet), str(gateway)
        rec.allocated[net.gateway] = "gateway"
        for aux_name, aux_ip in aux.items():  # reserved in IPAM: never handed out (moby's wording)
            addr = ipam.parse_address(aux_ip, f"auxiliary address {aux_name}")
            if addr not in subnet:
                raise InvalidArgument(f"invalid auxiliary address {aux_name}: it does not belong to subnet {subnet}")
            if str(addr) in rec.allocated:
                raise InvalidArgument(f"invalid auxiliary address {aux_name}: {addr} is already reserved "
                                      f"({rec.allocated[str(addr)]})")
            rec.allocated[str(addr)] = f"aux:{aux_name}"
        net.aux_addresses = dict(aux)
        return subnet

    def _ipam_config6(self, rec: NetRecord, cfg: dict[str, Any]) -> None:
        """The IPv6 entry of ``IPAM.Config`` (``--subnet fd00:db8:1::/64 --ipv6``): its gateway is
        the subnet's ``::1`` unless given, as Docker's."""
        net = rec.net
        subnet_s, gateway_s, range_s = cfg.get("Subnet") or "", cfg.get("Gateway") or "", cfg.get("IPRange") or ""
        subnet = ipam.parse_subnet(subnet_s, 6)
        for other in self.records.values():
            if other.net.subnet6 and subnet.overlaps(ipam.ipaddress.ip_network(other.net.subnet6)):
                raise Conflict(f"Pool overlaps with other one on this address space: {subnet} overlaps "
                               f"{other.net.subnet6} of network {other.name}")
        if gateway_s:
            gateway = ipam.parse_address(gateway_s, "gateway", 6)
            if gateway not in subnet or gateway == subnet.network_address:
                raise InvalidArgument(f"Invalid gateway {gateway_s}: it does not belong to subnet {subnet}")
        else:
            gateway = subnet.network_address + 1
        if range_s:
            rng = ipam.parse_subnet(range_s, 6)
            if not rng.subnet_of(subnet):
                raise InvalidArgument(f"Invalid IP range {range_s}: it is not inside subnet {subnet}")
            net.ip_range6 = str(rng)
        net.subnet6, net.gateway6 = str(subnet), str(gateway)
        rec.allocated[net.gateway6] = "gateway"
        aux = cfg.get("AuxiliaryAddresses") or cfg.get("AuxAddress") or {}
        if not isinstance(aux, dict) or not all(isinstance(v, str) for v in aux.values()):
            raise InvalidArgument("IPAM.Config.AuxiliaryAddresses must be an object of strings")
        for aux_name, aux_ip in aux.items():
            addr = ipam.parse_address(aux_ip, f"auxiliary address {aux_name}", 6)
            if addr not in subnet:
                raise InvalidArgument(f"invalid auxiliary address {aux_name}: it does not belong to subnet {subnet}")
            rec.allocated.setdefault(str(addr), f"aux:{aux_name}")
        net.aux_addresses = {**net.aux_addresses, **aux}

    def _default_subnet6(self, rec: NetRecord) -> None:
        """A /64 of this daemon's unique-local /48 (Docker 27's default IPv6 pool), under the host lock."""
        seed = getattr(self.daemon, "id", "") or str(self.daemon.config.data_root.resolve())
        base = ipam.ula_base(str(seed))
        taken = [ipam.ipaddress.IPv6Network(r.net.subnet6) for r in self.records.values() if r.net.subnet6]
        chosen = ipam.pick_subnet6(taken, base, secrets.randbelow(1 << 16))
        rec.net.subnet6, rec.net.gateway6 = str(chosen), str(chosen.network_address + 1)
        rec.allocated[rec.net.gateway6] = "gateway"

    async def remove(self, ref: str) -> None:
        rec = self.get(ref)
        if rec.net.predefined:
            raise Forbidden(f"{rec.name} is a pre-defined network and cannot be removed")
        async with self.lock:
            if rec.endpoints:
                raise Conflict(f"error while removing network: network {rec.name} id {rec.id} has active endpoints")
            await self._call(self.driver(rec.net.driver).delete, rec.net)
            (self.root / f"{rec.id}.json").unlink(missing_ok=True)
            self.records.pop(rec.id, None)
        self._emit("destroy", rec.id, name=rec.name, driver=rec.net.driver)

    async def prune(self, filters: str | None) -> dict[str, Any]:
        f = F.parse(filters, PRUNE_FILTERS)
        until = F.until_ns(f)
        deleted = []
        for rec in list(self.records.values()):
            n = rec.net
            if n.predefined or rec.endpoints:
                continue
            if not F.labels_match(f, n.labels):
                continue
            if until is not None and n.created_ns > until:
                continue
            with contextlib.suppress(Conflict):
                await self.remove(rec.id)
                deleted.append(rec.name)
        self._emit("prune", "")
        return {"NetworksDeleted": deleted or None}

    # -- queries ----------------------------------------------------------------------------

    def list(self, filters: str | None) -> list[dict[str, Any]]:
        f = F.parse(filters, LIST_FILTERS)
        for v in f.get("type", []):
            if v not in ("custom", "builtin"):
                raise InvalidArgument(f"invalid filter: 'type'='{v}'")
        for v in f.get("dangling", []):
            if v not in ("true", "false", "1", "0"):
                raise InvalidArgument(f"invalid filter 'dangling={v}'")

        def keep(rec: NetRecord) -> bool:
            n = rec.net

            def any_of(key: str, pred: Callable[[str], bool]) -> bool:
                return key not in f or any(pred(v) for v in f[key])

            return (any_of("driver", lambda v: n.driver == v)
                    and any_of("id", lambda v: v in n.id)
                    and any_of("name", lambda v: v in n.name)
                    and any_of("scope", lambda v: v == "local")
                    and any_of("type", lambda v: (v == "builtin") == n.predefined)
                    and any_of("dangling", lambda v: (v in ("true", "1")) == (not rec.endpoints and not n.predefined))
                    and F.labels_match(f, n.labels))

        return [rec.to_json() for rec in sorted(self.records.values(), key=lambda r: r.net.created_ns) if keep(rec)]

    def inspect(self, ref: str) -> dict[str, Any]:
        rec = self.get(ref)
        return rec.to_json(self._containers_of(rec))

    def _containers_of(self, rec: NetRecord) -> dict[str, Any]:
        containers = getattr(self.daemon, "containers", None)
        out = {}
        for ep in rec.endpoints.values():
            name = ""
            if containers is not None and ep.container_id in containers.containers:
                name = containers.containers[ep.container_id].name
            out[ep.container_id] = {"Name": name, "EndpointID": ep.id, "MacAddress": ep.mac,
                                    "IPv4Address": ep.address, "IPv6Address": getattr(ep, "address6", "")}
        if rec.net.driver in ("host", "null") and containers is not None:
            # no endpoints to wire there: as Docker, list the running containers that use the mode
            for c in containers.containers.values():
                if c.running and rec.name in c.networks:
                    out[c.id] = {"Name": c.name, "EndpointID": c.networks[rec.name].get("EndpointID") or "",
                                 "MacAddress": "", "IPv4Address": "", "IPv6Address": ""}
        return out

    def containers_service(self) -> ContainerService:
        """The daemon's containers service, for connect and disconnect (built before any request)."""
        svc = self.daemon.containers
        if svc is None:
            raise Unavailable("the container service is not running")
        return svc

    def endpoints_of(self, container_id: str) -> builtins.list[tuple[NetRecord, Endpoint]]:
        return [(r, e) for r in self.records.values() for e in r.endpoints.values() if e.container_id == container_id]

    # -- containers: create ------------------------------------------------------------

    def container_networks(self, host_config: dict[str, Any], networking: dict[str, Any] | None) -> dict[str, Any]:
        """``Container.networks`` for a new container from ``HostConfig.NetworkMode`` and
        ``NetworkingConfig.EndpointsConfig``; bad references are 404/400 before anything exists."""
        mode = host_config.get("NetworkMode") or "default"
        wanted = dict(((networking or {}).get("EndpointsConfig") or {}))
        if not isinstance(wanted, dict):
            raise InvalidArgument("NetworkingConfig.EndpointsConfig must be an object")
        if mode.startswith("container:"):
            if wanted:
                raise InvalidArgument("conflicting options: container type network can't be used with other networks")
            return {}
        primary = "bridge" if mode == "default" else mode
        if "default" in wanted:  # the docker CLI names the default network "default"
            wanted.setdefault("bridge", wanted.pop("default"))
        out: dict[str, Any] = {}
        order = [primary] + [k for k in wanted if k != primary]
        for ref in order:
            try:
                rec = self.get(ref)
            except NoSuchNetwork:
                if ref == "bridge" and ref == primary and not wanted.get(ref):
                    return {}  # no bridge driver on this daemon: a namespace with lo only
                # as Docker: a missing network fails the start (a 404 here would make the
                # docker CLI try to pull the image)
                out[ref] = endpoint_settings(Network(id="", name=ref, driver=""), wanted.get(ref))
                continue
            cfg = wanted.get(ref) or wanted.get(rec.name) or wanted.get(rec.id) or {}
            self._check_endpoint_config(rec, cfg)
            if rec.net.driver in ("host", "null") and len(order) > 1:
                raise InvalidArgument(f"container cannot be connected to multiple networks with one of the "
                                      f"networks in private ({rec.name}) mode")
            out[rec.name] = endpoint_settings(rec.net, cfg)
        return out

    def _check_endpoint_config(self, rec: NetRecord, cfg: dict[str, Any]) -> None:
        if not isinstance(cfg, dict):
            raise InvalidArgument("endpoint config must be an object")
        user_defined = not rec.net.predefined
        ipam_cfg = cfg.get("IPAMConfig") or {}
        address = ipam_cfg.get("IPv4Address") or ""
        address6 = ipam_cfg.get("IPv6Address") or ""
        if address6:
            if not user_defined:
                raise InvalidArgument("user specified IP address is supported on user defined networks only")
            pool6 = rec.pool6()
            if pool6 is None:
                raise InvalidArgument(f"invalid IPv6 address {address6}: network {rec.name} has no IPv6 "
                                      "(created without --ipv6)")
            addr6 = ipam.parse_address(address6, "IPv6 address", 6)
            if not pool6.usable(addr6):
                raise InvalidArgument(f"Invalid address {address6}: "
                                      "it does not belong to any of this network's subnets")
            if str(addr6) == rec.net.gateway6:
                raise Conflict(f"Address already in use: {address6} (the network's gateway)")
        lls = ipam_cfg.get("LinkLocalIPs") or []
        if not isinstance(lls, list) or not all(isinstance(v, str) for v in lls):
            raise InvalidArgument("IPAMConfig.LinkLocalIPs must be a list of strings")
        for text in lls:
            try:
                ipam.ipaddress.ip_address(text)
            except ValueError:
                raise InvalidArgument(f"invalid link-local IP address: {text}") from None
        if cfg.get("Aliases") and not user_defined:
            raise InvalidArgument("network-scoped alias is supported only for containers in user defined networks")
        if address:
            if not user_defined:
                raise InvalidArgument("user specified IP address is supported on user defined networks only")
            addr = ipam.parse_address(address, "IP address")
            pool = rec.pool()
            if not pool.usable(addr):
                raise InvalidArgument(f"Invalid address {address}: it does not belong to any of this network's subnets")
            if str(addr) == rec.net.gateway:
                raise Conflict(f"Address already in use: {address} (the network's gateway)")

    # -- containers: start and exit ------------------------------------------------------

    def netns_path(self, container_id: str) -> Path:
        return self.netns_dir / container_id

    async def setup(self, c: Any, directory: Path) -> str | None:
        """Before a container starts: its namespace with every endpoint wired. Returns the
        namespace path for the runtime to join, or None (host or container:<id> mode:
        ``ContainerService._namespaces`` handles those). Nothing is left on failure."""
        mode = c.host_config.get("NetworkMode") or "default"
        if mode == "host" or mode.startswith("container:"):
            return None
        path = self.netns_path(c.id)
        await asyncio.to_thread(netns.create, path)
        try:
            for name, settings in list(c.networks.items()):
                rec = self.records.get(settings.get("NetworkID") or "") or self.get(name)
                settings["NetworkID"] = rec.id
                if rec.net.driver in ("host", "null"):
                    continue
                await self._join(c, rec, settings, path)
            address = c.network_settings.get("IPAddress") or next(
                (s.get("IPAddress") for s in c.networks.values() if s.get("IPAddress")), None)
            from ..containers import etcfiles

            address6 = next((s.get("GlobalIPv6Address") for s in c.networks.values()
                             if address and s.get("IPAddress") == address), None)
            etcfiles.write_hosts(directory, c.config, c.host_config, address, address6)
            from . import dns

            await dns.setup_container(self, c, directory)  # resolv.conf; 127.0.0.11 on user networks
            await publishing.publish(self, c)  # HostConfig.PortBindings, after the endpoints exist
        except BaseException:
            await self.teardown(c)
            raise
        c.network_settings["SandboxKey"] = str(path)
        c.network_settings["SandboxID"] = c.id
        return str(path)

    async def _join(self, c: Any, rec: NetRecord, settings: dict[str, Any], path: Path) -> Endpoint:
        """Allocate, record, wire one endpoint; on failure nothing of it is left."""
        net = rec.net
        async with self.lock:
            if rec.id not in self.records:
                raise NoSuchNetwork(rec.name)
            mine = [e for _, e in self.endpoints_of(c.id)]
            if any(e.network_id == rec.id for e in mine):
                raise Conflict(f"endpoint with name {c.name} already exists in network {rec.name}")
            used = {e.ifname for e in mine}
            ifname = next(f"eth{i}" for i in range(len(used) + 1) if f"eth{i}" not in used)
            epid = secrets.token_hex(32)
            pool = rec.pool()
            fixed = (settings.get("IPAMConfig") or {}).get("IPv4Address") or None
            ip = pool.request(epid, fixed)
            rec.last = pool.last
            ip6 = ""
            pool6 = rec.pool6()
            if pool6 is not None:
                try:
                    ip6 = pool6.request(epid, (settings.get("IPAMConfig") or {}).get("IPv6Address") or None)
                except BaseException:
                    pool.release(epid)
                    raise
                rec.last6 = pool6.last
            mtu = int(net.options.get("com.docker.network.driver.mtu") or 1500)
            # --mac-address: kept in Config.MacAddress for the first network (the settings' copy
            # is cleared when the container stops), else Docker's 02:42:<ip> scheme
            mac = settings.get("MacAddress") or (c.config.get("MacAddress") if not mine else "") or mac_for(ip)
            ep = Endpoint(id=epid, network_id=rec.id, container_id=c.id, netns=str(path), ifname=ifname,
                          address=f"{ip}/{rec.prefixlen()}", gateway=net.gateway, mac=mac, mtu=mtu,
                          aliases=list(settings.get("Aliases") or []),
                          link_local=link_local_addresses(settings),
                          address6=f"{ip6}/{rec.prefixlen6()}" if ip6 else "",
                          # the IPv6 default route: the first non-internal network with IPv6 (maybe
                          # not eth0's, as Docker picks the IPv6 gateway endpoint on its own)
                          gateway6=net.gateway6 if ip6 and not net.internal and not any(
                              getattr(e, "gateway6", "") for e in mine) else "",
                          default_route=not net.internal and not any(e.default_route for e in mine))
            rec.endpoints[epid] = ep
            try:
                # Written (atomically) before the address is used, but not fsynced: an allocation
                # matters only while its container runs. A daemon crash loses no written file
                # (the page cache survives the process), and after a power loss no container
                # runs, so reconcile releases every allocation anyway. (~2 fsyncs per start.)
                self._save(rec, durable=False)
            except BaseException:
                rec.endpoints.pop(epid, None)
                pool.release(epid)
                raise
        try:
            await self._call(self.driver(net.driver).join, net, ep)
        except BaseException:
            async with self.lock:
                rec.endpoints.pop(epid, None)
                rec.pool().release(epid)
                self._save(rec)
            raise
        if ep.driver_state:
            self._save(rec, durable=False)  # the driver's state of the endpoint
        v6 = {"IPv6Gateway": "" if net.internal or not ip6 else net.gateway6, "GlobalIPv6Address": ip6,
              "GlobalIPv6PrefixLen": rec.prefixlen6() if ip6 else 0}
        settings.update({"NetworkID": rec.id, "EndpointID": epid, "Gateway": "" if net.internal else net.gateway,
                         "IPAddress": ip, "IPPrefixLen": rec.prefixlen(),
                         "MacAddress": ep.mac, **v6})
        if net.options.get("com.docker.network.bridge.default_bridge") == "true":
            c.network_settings.update({"Bridge": net.driver_state.get("bridge", ""), "EndpointID": epid,
                                       "Gateway": net.gateway, "IPAddress": ip, "IPPrefixLen": rec.prefixlen(),
                                       "MacAddress": ep.mac, **v6})
        self._emit("connect", rec.id, container=c.id, name=rec.name, driver=net.driver)
        return ep

    async def teardown(self, c: Any) -> None:
        """Remove every endpoint of ``c``, its allocations and its namespace. Idempotent.
        Only for a container that does not run: its namespace goes, and its links with it."""
        for rec, ep in self.endpoints_of(c.id):
            await self._leave(c, rec, ep, namespace_going=True)
        if self._dns is not None:
            self._dns.stop(c.id)  # its sockets hold the namespace
        path = self.netns_path(c.id)
        if os.path.lexists(path):  # (gone already at rm after the exit's teardown: no worker for that)
            await asyncio.to_thread(netns.remove, path)
        for settings in c.networks.values():
            # a configured MAC (connect --mac-address) stays, as moby's DesiredMacAddress: one
            # that is not Docker's 02:42:<ip> scheme was asked for (Config.MacAddress holds the
            # first network's anyway)
            mac = settings.get("MacAddress") or ""
            ip = settings.get("IPAddress") or ""
            keep = mac if mac and ip and mac != mac_for(ip) else ""
            settings.update({"EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "MacAddress": keep,
                             "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0})
        for key in ("Bridge", "EndpointID", "Gateway", "IPAddress", "MacAddress", "SandboxKey", "SandboxID",
                    "IPv6Gateway", "GlobalIPv6Address", "GlobalIPv6PrefixLen"):
            c.network_settings.pop(key, None)
        c.network_settings.pop("IPPrefixLen", None)

    async def _leave(self, c: Any, rec: NetRecord, ep: Endpoint, namespace_going: bool = False) -> None:
        try:
            await publishing.unpublish(self, c, rec, ep)
        except Exception as exc:
            log.warning("unpublishing ports of %s failed: %s", c.id[:12], exc)
        try:
            drv = self.driver(rec.net.driver)
            forget = namespace_going and self.capable(rec.net.driver, "forget")
            await self._call(drv.forget if forget else drv.leave, rec.net, ep)
        except Exception as exc:
            log.warning("leaving network %s for %s failed: %s", rec.name, c.id[:12], exc)
        async with self.lock:
            rec.endpoints.pop(ep.id, None)
            rec.pool().release(ep.id)
            if not namespace_going:  # a disconnect: the container runs on, so the record must say so
                self._save(rec, durable=False)
            # else the container is not running: the next save of this record writes the release,
            # and after a crash reconcile drops the endpoints of containers that do not run
        self._emit("disconnect", rec.id, container=c.id, name=rec.name, driver=rec.net.driver)

    # -- connect and disconnect ----------------------------------------------------------

    async def connect(self, ref: str, container_ref: str, cfg: dict[str, Any] | None) -> None:
        rec = self.get(ref)
        svc = self.containers_service()
        c = svc.get(container_ref)
        cfg = cfg or {}
        mode = c.host_config.get("NetworkMode") or "default"
        if rec.net.driver in ("host", "null"):
            raise InvalidArgument("container cannot be disconnected from host network or connected to host network"
                                  if rec.net.driver == "host" else
                                  "container cannot be connected to multiple networks with one of the networks "
                                  "in private (none) mode")
        if mode in ("host", "none") or mode.startswith("container:"):
            raise InvalidArgument("container sharing network namespace with another container or host cannot be "
                                  "connected to any other network")
        self._check_endpoint_config(rec, cfg)
        if cfg.get("MacAddress"):  # EndpointConfig.MacAddress (API >= 1.44, `network connect --mac-address`)
            from ..containers.options import normalize_mac

            cfg = {**cfg, "MacAddress": normalize_mac(cfg["MacAddress"])}
        async with svc.lock(c.id):
            if rec.name in c.networks:
                raise Conflict(f"endpoint with name {c.name} already exists in network {rec.name}")
            settings = endpoint_settings(rec.net, cfg)
            path = self.netns_path(c.id)
            if c.running and netns.is_mounted(path):
                await self._join(c, rec, settings, path)
            c.networks[rec.name] = settings
            if c.running:
                from . import dns

                await dns.setup_container(self, c, svc.dir(c), connect=True)  # a first user network: 127.0.0.11
            svc.save(c)

    async def disconnect(self, ref: str, container_ref: str, force: bool = False) -> None:
        rec = self.get(ref)
        svc = self.containers_service()
        try:
            c = svc.get(container_ref)
        except NotFound:
            if not force:
                raise
            for ep in [e for e in rec.endpoints.values() if e.container_id.startswith(container_ref)]:
                await self._call(self.driver(rec.net.driver).leave, rec.net, ep)
                async with self.lock:
                    rec.endpoints.pop(ep.id, None)
                    rec.pool().release(ep.id)
                    self._save(rec)
            return
        if rec.net.driver == "host" and not force:
            raise InvalidArgument("container cannot be disconnected from host network or connected to host network")
        async with svc.lock(c.id):
            if rec.name not in c.networks:
                raise Conflict(f"container {c.id} is not connected to network {rec.name}")
            for r, ep in self.endpoints_of(c.id):
                if r.id == rec.id:
                    await self._leave(c, r, ep)
            settings = c.networks.pop(rec.name)
            if c.network_settings.get("EndpointID") == settings.get("EndpointID"):
                for key in ("Bridge", "EndpointID", "Gateway", "IPAddress", "IPPrefixLen", "MacAddress",
                            "IPv6Gateway", "GlobalIPv6Address", "GlobalIPv6PrefixLen"):
                    c.network_settings.pop(key, None)
            svc.save(c)

    # -- shutdown ----------------------------------------------------------------------------

    async def close(self) -> None:
        """Daemon shutdown: a driver with no endpoint left removes its links and rules from the
        host (reconcile re-creates them at the next start); with live-restore they stay."""
        if self._dns is not None:
            self._dns.close()
        by_driver: dict[str, list[NetRecord]] = {}
        for rec in self.records.values():
            by_driver.setdefault(rec.net.driver, []).append(rec)
        for name, drv in self.drivers.items():
            recs = by_driver.get(name, [])
            in_use = any(r.endpoints for r in recs)
            try:
                await asyncio.to_thread(drv.close, [r.net for r in recs], in_use)
            except Exception:
                log.exception("closing network driver %s failed", name)
