"""Published ports, the container side: Docker's ``ExposedPorts``, ``HostConfig.PortBindings``
and ``PublishAllPorts`` checked and turned into the list of bindings to publish, and the
shapes clients read back (``NetworkSettings.Ports`` in inspect, ``Ports`` in the list).

The network driver does the publishing (listening sockets, DNAT rules); this module is pure.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from ..drivers.network import PortBinding
from ..errors import InvalidArgument

PROTOCOLS = ("tcp", "udp")


def _port_number(text: str, what: str) -> int:
    try:
        num = int(text)
    except (TypeError, ValueError):
        raise InvalidArgument(f"invalid {what}: {text!r}") from None
    if not 0 < num < 65536:
        raise InvalidArgument(f"invalid {what}: {text!r} (must be between 1 and 65535)")
    return num


def parse_port_key(key: str) -> tuple[int, str]:
    """``"80/tcp"``, ``"53/udp"``, ``"80"`` (tcp) -> (port, proto)."""
    if not isinstance(key, str) or not key:
        raise InvalidArgument(f"invalid port specification: {key!r}")
    port, _, proto = key.partition("/")
    proto = (proto or "tcp").lower()
    if proto not in PROTOCOLS:
        raise InvalidArgument(f"invalid proto: {proto} (supported: tcp, udp)")
    return _port_number(port, "containerPort"), proto


def _host_ip(text: Any) -> str:
    if text in (None, ""):
        return ""
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        raise InvalidArgument(f"invalid IP address: {text}") from None
    # "::" is every IPv6 address only (Docker binds 0.0.0.0 and :: for an empty HostIp)
    return "" if addr.version == 4 and addr.is_unspecified else str(addr)


def _host_ports(text: Any) -> tuple[int, int]:
    """``""``/``"0"`` -> (0, 0); ``"8080"`` -> (8080, 0); ``"8000-8010"`` -> (8000, 8010)."""
    text = "" if text is None else str(text).strip()
    if text in ("", "0"):
        return 0, 0
    low, sep, high = text.partition("-")
    first = _port_number(low, "hostPort")
    if not sep:
        return first, 0
    last = _port_number(high, "hostPort")
    if last < first:
        raise InvalidArgument(f"invalid hostPort range: {text}")
    return first, last if last > first else 0


def exposed(config: dict[str, Any], host_config: dict[str, Any]) -> list[tuple[int, str]]:
    """Every port the container exposes (its config, which already holds the image's, and the
    keys of its port bindings), sorted."""
    keys = set((config.get("ExposedPorts") or {})) | set((host_config.get("PortBindings") or {}))
    return sorted({parse_port_key(k) for k in keys}, key=lambda p: (p[1], p[0]))


def validate(config: dict[str, Any], host_config: dict[str, Any]) -> None:
    """A 400 at create for anything :func:`requested` would refuse at start."""
    exposed_ports = config.get("ExposedPorts") or {}
    if not isinstance(exposed_ports, dict):
        raise InvalidArgument("ExposedPorts must be an object")
    bindings = host_config.get("PortBindings") or {}
    if not isinstance(bindings, dict):
        raise InvalidArgument("PortBindings must be an object")
    exposed(config, host_config)
    if (host_config.get("NetworkMode") or "").startswith("container:") and (
            bindings or host_config.get("PublishAllPorts")):
        raise InvalidArgument("conflicting options: port publishing and the container type network mode")
    requested(config, host_config)


def requested(config: dict[str, Any], host_config: dict[str, Any]) -> list[PortBinding]:
    """The bindings to publish at start: ``PortBindings``, and with ``PublishAllPorts`` every
    other exposed port on a free host port of every address."""
    out: list[PortBinding] = []
    bound: set[tuple[int, str]] = set()
    for key, entries in sorted((host_config.get("PortBindings") or {}).items()):
        port, proto = parse_port_key(key)
        if entries is None:
            entries = []
        if not isinstance(entries, list):
            raise InvalidArgument(f"PortBindings[{key!r}] must be a list of {{HostIp, HostPort}}")
        for entry in entries or [{}]:
            if not isinstance(entry, dict):
                raise InvalidArgument(f"PortBindings[{key!r}] must be a list of {{HostIp, HostPort}}")
            first, last = _host_ports(entry.get("HostPort"))
            out.append(PortBinding(port, proto, _host_ip(entry.get("HostIp")), first, last))
        bound.add((port, proto))
    if host_config.get("PublishAllPorts"):
        for port, proto in exposed(config, host_config):
            if (port, proto) not in bound:
                out.append(PortBinding(port, proto, "", 0))
    return out


def inspect_ports(config: dict[str, Any], host_config: dict[str, Any],
                  published: list[PortBinding] | None) -> dict[str, Any]:
    """``NetworkSettings.Ports``: every exposed port, with its host bindings or null.

    ``published`` are the bindings the driver made (with the real host ports); None while
    the container is not running, as Docker shows ``{}`` then."""
    if published is None:
        return {}
    ports: dict[str, Any] = {f"{p}/{proto}": None for p, proto in exposed(config, host_config)}
    for b in published:
        key = f"{b.container_port}/{b.protocol}"
        entry = {"HostIp": b.host_ip or "0.0.0.0", "HostPort": str(b.host_port)}
        ports[key] = [*(ports.get(key) or []), entry]
    return ports


def list_ports(ports: dict[str, Any]) -> list[dict[str, Any]]:
    """``Ports`` of ``GET /containers/json`` from ``NetworkSettings.Ports``."""
    out: list[dict[str, Any]] = []
    for key, entries in (ports or {}).items():
        port, proto = parse_port_key(key)
        if not entries:
            out.append({"PrivatePort": port, "Type": proto})
            continue
        for e in entries:
            out.append({"IP": e.get("HostIp") or "0.0.0.0", "PrivatePort": port,
                        "PublicPort": int(e["HostPort"]), "Type": proto})
    return out


def filter_keys(values: list[str], what: str) -> set[str]:
    """``publish``/``expose`` filter values (``80``, ``80/udp``, ``8000-8002/tcp``) as port keys."""
    keys: set[str] = set()
    for value in values:
        port, _, proto = value.partition("/")
        proto = (proto or "tcp").lower()
        low, sep, high = port.partition("-")
        try:
            first, last = int(low), int(high) if sep else int(low)
        except ValueError:
            raise InvalidArgument(f"invalid filter '{what}={value}'") from None
        if proto not in PROTOCOLS or not 0 < first <= last < 65536:
            raise InvalidArgument(f"invalid filter '{what}={value}'")
        keys.update(f"{p}/{proto}" for p in range(first, last + 1))
    return keys


def matches(filters: dict[str, list[str]], config: dict[str, Any], host_config: dict[str, Any],
            network_settings: dict[str, Any]) -> bool:
    """``docker ps --filter publish=80 / expose=80``: a container port published (with a host
    binding now) / exposed."""
    if "publish" in filters:
        published = {k for k, v in (network_settings.get("Ports") or {}).items() if v}
        if not published & filter_keys(filters["publish"], "publish"):
            return False
    if "expose" in filters:
        exposed_keys = {f"{p}/{proto}" for p, proto in exposed(config, host_config)}
        if not exposed_keys & filter_keys(filters["expose"], "expose"):
            return False
    return True
