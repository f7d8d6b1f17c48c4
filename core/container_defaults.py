"""The daemon's defaults for what a container does not set itself (dockerd's ``dns``,
``dns-search``, ``dns-opts``, ``default-shm-size``, ``default-ulimits``). Set once by the daemon
at start (:func:`configure`); read where resolv.conf, /dev/shm and the rlimits are made.

As in dockerd, DNS and ulimit defaults apply when the container is started (its HostConfig keeps
what the request said, so inspect shows ``Dns: null``); the shm size is filled in at create
(inspect shows it, as dockerd's).
"""

from __future__ import annotations

from typing import Any

SHM_SIZE = 64 << 20
DNS: dict[str, list[str]] = {"Dns": [], "DnsSearch": [], "DnsOptions": []}
ULIMITS: dict[str, tuple[int, int]] = {}


def configure(config: Any) -> None:
    global SHM_SIZE, ULIMITS
    SHM_SIZE = int(getattr(config, "default_shm_size", 64 << 20) or 64 << 20)
    DNS.update(Dns=list(getattr(config, "dns", ()) or ()), DnsSearch=list(getattr(config, "dns_search", ()) or ()),
               DnsOptions=list(getattr(config, "dns_opts", ()) or ()))
    ULIMITS = dict(getattr(config, "default_ulimits", {}) or {})


def dns(host_config: dict[str, Any]) -> dict[str, Any]:
    """``host_config`` with the daemon's ``dns``/``dns-search``/``dns-opts`` for each of
    Dns/DnsSearch/DnsOptions the container left empty (moby: per list, at sandbox creation)."""
    if not any(DNS.values()):
        return host_config
    return {**host_config, **{k: v for k, v in DNS.items() if v and not host_config.get(k)}}


def ulimits(requested: list[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
    """The container's ulimits plus the daemon's for every name it did not set (moby's mergeUlimits)."""
    names = {name for name, _, _ in requested}
    return [*requested, *((n, s, h) for n, (s, h) in ULIMITS.items() if n not in names)]
