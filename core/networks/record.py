"""A network's persistent record: the driver's :class:`Network`, its address allocations and
its endpoints, in one JSON file (``<data-root>/networks/<id>.json``)."""

from __future__ import annotations

import ipaddress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..drivers.network import Endpoint, Network
from ..store import read_json, write_json
from ..timestamps import rfc3339_nano_fixed
from .ipam import Pool


@dataclass
class NetRecord:
    net: Network
    allocated: dict[str, str] = field(default_factory=dict)  # ip -> endpoint id ("gateway" for the gateway)
    last: str = ""  # the last dynamic address handed out (round-robin)
    endpoints: dict[str, Endpoint] = field(default_factory=dict)
    last6: str = ""  # the same for the IPv6 subnet

    @property
    def id(self) -> str:
        return self.net.id

    @property
    def name(self) -> str:
        return self.net.name

    def pool(self) -> Pool:
        return Pool(self.net.subnet, self.net.ip_range, self.allocated, self.last)

    def pool6(self) -> Pool | None:
        """The IPv6 subnet's allocations (the same ``allocated`` dict: addresses never clash)."""
        if not self.net.enable_ipv6 or not self.net.subnet6:
            return None
        return Pool(self.net.subnet6, self.net.ip_range6, self.allocated, self.last6)

    def save(self, root: Path, sync: bool = True) -> None:
        data = {"net": asdict(self.net), "allocated": self.allocated, "last": self.last, "last6": self.last6,
                "endpoints": {k: asdict(v) for k, v in self.endpoints.items()}}
        write_json(root / f"{self.id}.json", data, sync=sync)

    @classmethod
    def load(cls, path: Path) -> "NetRecord | None":
        data = read_json(path)
        if not data:
            return None
        net = Network(**{k: v for k, v in data["net"].items() if k in Network.__dataclass_fields__})
        eps = {k: Endpoint(**{f: x for f, x in v.items() if f in Endpoint.__dataclass_fields__})
               for k, v in (data.get("endpoints") or {}).items()}
        return cls(net, dict(data.get("allocated") or {}), data.get("last") or "", eps, data.get("last6") or "")

    def prefixlen(self) -> int:
        return ipaddress.ip_network(self.net.subnet).prefixlen if self.net.subnet else 0

    def prefixlen6(self) -> int:
        return ipaddress.ip_network(self.net.subnet6).prefixlen if self.net.subnet6 else 0

    def to_json(self, containers: dict[str, Any] | None = None) -> dict[str, Any]:
        """Docker's network object (``GET /networks/{id}``); ``containers`` fills ``Containers``."""
        n = self.net
        config = []
        if n.subnet:
            entry: dict[str, Any] = {"Subnet": n.subnet, "Gateway": n.gateway}
            if n.ip_range:
                entry["IPRange"] = n.ip_range
            if n.aux_addresses:
                entry["AuxiliaryAddresses"] = dict(n.aux_addresses)
            config.append(entry)
        if n.enable_ipv6 and n.subnet6:
            entry = {"Subnet": n.subnet6, "Gateway": n.gateway6}
            if n.ip_range6:
                entry["IPRange"] = n.ip_range6
            config.append(entry)
        return {
            "Name": n.name,
            "Id": n.id,
            "Created": rfc3339_nano_fixed(n.created_ns),
            "Scope": "local",
            "Driver": n.driver,
            "EnableIPv6": n.enable_ipv6,
            "IPAM": {"Driver": "default", "Options": None if n.predefined or n.ipam_options is None
                     else dict(n.ipam_options), "Config": config},
            "Internal": n.internal,
            "Attachable": n.attachable,
            "Ingress": False,
            "ConfigFrom": {"Network": ""},
            "ConfigOnly": False,
            "Containers": containers if containers is not None else {},
            "Options": dict(n.options),
            "Labels": dict(n.labels),
        }
