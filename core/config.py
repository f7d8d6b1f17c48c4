"""Daemon configuration: a TOML file plus dockerd-style flags, decoded once into a frozen dataclass.

The file uses dockerd's ``daemon.json`` key names where they mean the same thing, so
operators carry their settings over::

    hosts = ["unix:///run/dockyard.sock", "tcp://127.0.0.1:2375"]
    data-root = "/var/lib/dockyard"
    exec-root = "/run/dockyard"
    group = "dockyard"
    log-level = "info"
    storage-driver = "overlay"

    [log-opts]
    max-size = "10m"

    [plugins.overlay]          # one table per plugin, named by its entry point
    some-option = 1

Unknown keys are errors. As in dockerd, a setting given both as a flag and in the file is
an error. Nothing else in the daemon reads the environment (except plugin switches in
``dockyard.plugins``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

DEFAULT_UNIX_SOCKET = "/run/dockyard.sock"
DEFAULT_HOST = f"unix://{DEFAULT_UNIX_SOCKET}"
LOG_LEVELS = ("debug", "info", "warn", "error", "fatal")


@dataclass(frozen=True)
class DaemonConfig:
    hosts: tuple[str, ...] = (DEFAULT_HOST,)
    data_root: Path = Path("/var/lib/dockyard")
    exec_root: Path = Path("/run/dockyard")
    pidfile: Path | None = None  # default: <exec-root>/dockyardd.pid
    group: str | None = None  # socket group; default "dockyard" when that group exists
    debug: bool = False
    log_level: str = "info"
    log_format: str = "text"  # "text" or "json" (structured, one object per line)
    storage_driver: str | None = None  # None: the first usable of overlay, vfs
    # bytes of layer tars docker save keeps to send again with sendfile (dockyard.images.layercache); 0: off
    layer_tar_cache: int = 1 << 30
    runtime: str | None = None  # None: native
    cgroups: str | None = None  # None: auto
    # dockerd's --cgroup-parent: containers without HostConfig.CgroupParent go to <it>/<id>
    cgroup_parent: str | None = None
    # dockerd's --exec-opt; only native.cgroupdriver=cgroupfs (dockyard.containers.cgparent)
    exec_opts: tuple[str, ...] = ()
    insecure_tcp: bool = False  # allow plain TCP on non-loopback addresses
    # dockerd's TLS flags; tcp:// URLs are served by the ``tls`` transport when either is on
    tls: bool = False  # TLS without client verification
    tlsverify: bool = False  # TLS and require client certificates signed by ``tlscacert`` (implies tls)
    tlscacert: Path = Path("/etc/dockyard/ca.pem")
    tlscert: Path = Path("/etc/dockyard/cert.pem")
    tlskey: Path = Path("/etc/dockyard/key.pem")
    live_restore: bool = True
    # dockerd's --userns-remap: "default" (the dockremap user) or USER[:GROUP] with ranges in
    # /etc/subuid and /etc/subgid; containers' root is then an unprivileged host uid
    userns_remap: str | None = None
    # registries (dockerd's names); localhost and 127.0.0.0/8 are always insecure-allowed
    registry_mirrors: tuple[str, ...] = ()
    insecure_registries: tuple[str, ...] = ()
    max_concurrent_downloads: int = 3
    max_concurrent_uploads: int = 5
    max_download_attempts: int = 5
    registry_read_timeout: float = 60.0  # seconds without a byte before a registry transfer is retried
    # API request limits (dockyard.api.limits), whatever plugins are loaded; 0 turns one off
    api_max_json_body: int = 4 << 20  # bytes of a JSON request body (in the file: "4m")
    api_header_timeout: float = 60.0  # seconds to receive a request's headers
    api_idle_timeout: float = 300.0  # seconds a kept-alive connection may wait for its next request
    api_max_connections_per_peer: int = 512  # open connections per uid (Unix socket) or IP (TCP)
    log_driver: str = "json-file"  # dockerd's log-driver: containers without --log-driver (dockyard.logging names)
    log_opts: dict[str, str] = field(default_factory=dict)
    # dockerd's runtimes: --runtime NAME -> OCI runtime binary, served by the oci runtime plugin
    runtimes: dict[str, str] = field(default_factory=dict)
    # dockerd's default-address-pools: ((base, size), ...) for networks created without a subnet
    default_address_pools: tuple[tuple[str, int], ...] = ()
    ipv6: bool = False  # dockerd's ipv6: IPv6 on the default bridge network
    fixed_cidr_v6: str | None = None  # its IPv6 subnet (default: a /64 of the daemon's unique-local /48)
    # dockerd's metrics-addr (HOST:PORT): read by the metrics plugin (plugins/metrics), which serves
    # Prometheus metrics there; without that plugin installed the key is accepted and unused
    metrics_addr: str | None = None
    # dockerd's bip: the default bridge's gateway address and prefix ("192.168.200.1/24"); None: a
    # free subnet of the address pools, as for user networks
    bip: str | None = None
    # dockerd's dns, dns-search, dns-opts: containers' resolv.conf (or the embedded DNS's upstreams)
    # when their request sets none of their own
    dns: tuple[str, ...] = ()
    dns_search: tuple[str, ...] = ()
    dns_opts: tuple[str, ...] = ()
    # dockerd's default-shm-size (bytes; "64m" in the file): /dev/shm of containers without --shm-size
    default_shm_size: int = 64 << 20
    # dockerd's default-ulimits: {name: (soft, hard)} for containers that do not set that ulimit
    default_ulimits: dict[str, tuple[int, int]] = field(default_factory=dict)
    # dockerd switches only their default (true) is implemented for; false is refused at start
    userland_proxy: bool = True
    icc: bool = True
    ip_forward: bool = True
    iptables: bool = True
    plugins: dict[str, dict[str, Any]] = field(default_factory=dict)
    config_file: Path | None = None

    @property
    def tls_enabled(self) -> bool:
        """dockerd's rule: ``--tlsverify`` implies ``--tls``."""
        return self.tls or self.tlsverify

    @property
    def pidfile_path(self) -> Path:
        return self.pidfile or self.exec_root / "dockyardd.pid"

    def plugin_config(self, name: str) -> dict[str, Any]:
        return dict(self.plugins.get(name, {}))


# file key -> field name; the file uses dockerd's daemon.json spelling
FILE_KEYS = {
    "hosts": "hosts",
    "data-root": "data_root",
    "exec-root": "exec_root",
    "pidfile": "pidfile",
    "group": "group",
    "debug": "debug",
    "log-level": "log_level",
    "log-format": "log_format",
    "storage-driver": "storage_driver",
    "layer-tar-cache": "layer_tar_cache",
    "runtime": "runtime",
    "cgroups": "cgroups",
    "cgroup-parent": "cgroup_parent",
    "exec-opts": "exec_opts",
    "insecure-tcp": "insecure_tcp",
    "tls": "tls",
    "tlsverify": "tlsverify",
    "tlscacert": "tlscacert",
    "tlscert": "tlscert",
    "tlskey": "tlskey",
    "live-restore": "live_restore",
    "userns-remap": "userns_remap",
    "registry-mirrors": "registry_mirrors",
    "insecure-registries": "insecure_registries",
    "max-concurrent-downloads": "max_concurrent_downloads",
    "max-concurrent-uploads": "max_concurrent_uploads",
    "max-download-attempts": "max_download_attempts",
    "registry-read-timeout": "registry_read_timeout",
    "api-max-json-body": "api_max_json_body",
    "api-header-timeout": "api_header_timeout",
    "api-idle-timeout": "api_idle_timeout",
    "api-max-connections-per-peer": "api_max_connections_per_peer",
    "log-driver": "log_driver",
    "log-opts": "log_opts",
    "runtimes": "runtimes",
    "default-address-pools": "default_address_pools",
    "ipv6": "ipv6",
    "fixed-cidr-v6": "fixed_cidr_v6",
    "metrics-addr": "metrics_addr",
    "bip": "bip",
    "dns": "dns",
    "dns-search": "dns_search",
    "dns-opts": "dns_opts",
    "default-shm-size": "default_shm_size",
    "default-ulimits": "default_ulimits",
    "userland-proxy": "userland_proxy",
    "icc": "icc",
    "ip-forward": "ip_forward",
    "iptables": "iptables",
    "plugins": "plugins",
}

# dockerd switches whose non-default value this engine does not implement: refused at start
# with the reason, rather than accepted and silently not honoured
REFUSED_FALSE = {
    "userland_proxy": "published ports always keep their listening socket in the daemon: it reserves "
                      "the port and proxies what DNAT cannot forward (traffic from containers on the "
                      "engine's bridges, hairpin); DNAT is already used wherever the kernel can forward",
    "icc": "blocking traffic between containers on one bridge needs br_netfilter (a host-wide setting "
           "this engine does not change); put containers that must not talk on different networks",
    "ip_forward": "the bridge driver needs net.ipv4.ip_forward for containers' outbound traffic and "
                  "turns it on when it starts",
    "iptables": "the engine's nftables rules (NAT, published ports, network isolation) are how bridge "
                "networks work here; there is no mode without them",
}
FIELD_TO_KEY = {v: k for k, v in FILE_KEYS.items()}
#: other spellings of a key: dockerd's (daemon.json) -> this file's
KEY_ALIASES = {"default-runtime": "runtime"}


def _coerce(name: str, value: Any) -> Any:
    key = FIELD_TO_KEY.get(name, name)
    if name == "hosts":
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)) or not all(isinstance(h, str) for h in value):
            raise ConfigError(f"{key}: expected a list of URLs")
        return tuple(value)
    if name == "exec_opts":
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)) or not all(isinstance(h, str) and h for h in value):
            raise ConfigError(f"{key}: expected a list of KEY=VALUE strings")
        return tuple(value)
    if name in ("registry_mirrors", "insecure_registries"):
        if not isinstance(value, (list, tuple)) or not all(isinstance(h, str) and h for h in value):
            raise ConfigError(f"{key}: expected a list of registries")
        return tuple(value)
    if name in ("max_concurrent_downloads", "max_concurrent_uploads", "max_download_attempts", "registry_read_timeout"):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ConfigError(f"{key}: expected a positive number")
        return value
    if name in ("api_max_json_body", "layer_tar_cache"):
        size = parse_size(value) if isinstance(value, str) else value
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            off = "no limit" if name == "api_max_json_body" else "off"
            raise ConfigError(f"{key}: expected a size (\"16m\") or a number of bytes, 0 for {off}")
        return size
    if name in ("api_header_timeout", "api_idle_timeout", "api_max_connections_per_peer"):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ConfigError(f"{key}: expected a number (0 for no limit)")
        if name == "api_max_connections_per_peer" and not isinstance(value, int):
            raise ConfigError(f"{key}: expected a whole number (0 for no limit)")
        return value
    if name in ("data_root", "exec_root", "pidfile", "config_file", "tlscacert", "tlscert", "tlskey"):
        if value is None:
            return None
        if not isinstance(value, (str, Path)) or not str(value):
            raise ConfigError(f"{key}: expected a path")
        return Path(value)
    if name in ("debug", "insecure_tcp", "live_restore", "tls", "tlsverify"):
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false")
        return value
    if name == "log_level":
        if value not in LOG_LEVELS:
            raise ConfigError(f"{key}: {value!r} is not one of {', '.join(LOG_LEVELS)}")
        return value
    if name == "log_driver":  # the drivers registered in dockyard.logging (dockyard.drivers.logging)
        from .drivers.logging import LogDrivers

        names = LogDrivers().names()
        if value not in names:
            raise ConfigError(f"{key}: logger: no log driver named {value!r} is registered ({', '.join(names)})")
        return value
    if name == "log_format":
        if value not in ("text", "json"):
            raise ConfigError(f"{key}: {value!r} is not 'text' or 'json'")
        return value
    if name == "runtimes":  # dockerd's shape: {name: {path: ...}}; runtimeArgs are not passed on
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a table of name = {{path = \"...\"}}")
        out = {}
        for rname, entry in value.items():
            path = entry.get("path") if isinstance(entry, dict) else None
            if not isinstance(path, str) or not path:
                raise ConfigError(f"{key}.{rname}: expected a table with a path")
            if set(entry) - {"path"}:
                extra = ", ".join(sorted(set(entry) - {"path"}))
                raise ConfigError(f"{key}.{rname}: only path is supported (not {extra})")
            if rname in ("native", "oci"):
                raise ConfigError(f"{key}.{rname}: the name is reserved")
            out[str(rname)] = path
        return out
    if name == "log_opts":
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a table")
        return {str(k): str(v) for k, v in value.items()}
    if name == "default_address_pools":
        return _address_pools(key, value)
    if name == "ipv6":
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false")
        return value
    if name == "fixed_cidr_v6":
        import ipaddress

        try:
            net = ipaddress.ip_network(str(value), strict=False)
        except ValueError:
            raise ConfigError(f"{key}: {value!r} is not a subnet") from None
        if net.version != 6 or net.prefixlen > 126:
            raise ConfigError(f"{key}: {value!r} is not an IPv6 subnet (at most a /126)")
        return str(net)
    if name in REFUSED_FALSE:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false")
        if not value:
            raise ConfigError(f"{key}: false is not supported: {REFUSED_FALSE[name]}")
        return value
    if name == "bip":
        import ipaddress

        try:
            iface = ipaddress.ip_interface(str(value))
        except ValueError:
            raise ConfigError(f"{key}: {value!r} is not an address with a prefix (192.168.200.1/24)") from None
        if iface.version != 4 or "/" not in str(value) or iface.network.prefixlen > 30:
            raise ConfigError(f"{key}: {value!r} is not an IPv4 address with a prefix of at most /30")
        if iface.ip in (iface.network.network_address, iface.network.broadcast_address):
            raise ConfigError(f"{key}: {iface.ip} is the network or broadcast address of {iface.network}")
        return str(iface)
    if name == "dns":
        import ipaddress

        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list of IP addresses")
        for server in value:
            try:
                ipaddress.ip_address(str(server))
            except ValueError:
                raise ConfigError(f"{key}: {server!r} is not an IP address") from None
        return tuple(str(v) for v in value)
    if name in ("dns_search", "dns_opts"):
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v and not any(
                c.isspace() for c in v) for v in value):
            raise ConfigError(f"{key}: expected a list of strings without spaces")
        return tuple(value)
    if name == "default_shm_size":
        size = parse_size(value) if isinstance(value, str) else value
        if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
            raise ConfigError(f"{key}: expected a size (\"64m\") or a number of bytes")
        return size
    if name == "default_ulimits":
        return _ulimits(key, value)
    if name == "plugins":
        if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
            raise ConfigError(f"{key}: expected one table per plugin ([plugins.NAME])")
        return {k: dict(v) for k, v in value.items()}
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"{key}: expected a string")
    return value


def _ulimits(key: str, value: Any) -> dict[str, tuple[int, int]]:
    """dockerd's ``{"nofile": {"Name": "nofile", "Soft": 1024, "Hard": 2048}}`` (in TOML a table
    per ulimit) or ``--default-ulimit``'s ``["nofile=1024:2048", "nproc=512"]``."""
    from .drivers.runtime import validate_ulimits

    items: list[tuple[str, Any, Any]] = []
    if isinstance(value, dict):
        for name, limit in value.items():
            if not isinstance(limit, dict) or not set(limit) <= {"Name", "Soft", "Hard"} or "Soft" not in limit:
                raise ConfigError(f"{key}.{name}: expected a table with Soft and Hard")
            if limit.get("Name", name) != name:
                raise ConfigError(f"{key}.{name}: Name {limit['Name']!r} differs from the key")
            items.append((name, limit["Soft"], limit.get("Hard", limit["Soft"])))
    elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        for text in value:
            name, _, limits = text.partition("=")
            soft, _, hard = limits.partition(":")
            try:
                items.append((name, int(soft), int(hard or soft)))
            except ValueError:
                raise ConfigError(f"{key}: invalid ulimit {text!r} (NAME=SOFT[:HARD])") from None
    else:
        raise ConfigError(f"{key}: expected a table of {{Name, Soft, Hard}} per ulimit")
    out = {}
    for name, soft, hard in items:
        if isinstance(soft, bool) or isinstance(hard, bool) or not isinstance(soft, int) or not isinstance(hard, int):
            raise ConfigError(f"{key}.{name}: Soft and Hard are numbers")
        try:
            validate_ulimits([(name, soft, hard)])
        except Exception as exc:
            raise ConfigError(f"{key}.{name}: {exc}") from None
        out[name] = (soft, hard)
    return out


def _address_pools(key: str, value: Any) -> tuple[tuple[str, int], ...]:
    """``[{base = "10.10.0.0/16", size = 24}, ...]`` (dockerd's daemon.json shape)."""
    import ipaddress

    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{key}: expected a list of {{base, size}} tables")
    out = []
    for pool in value:
        if isinstance(pool, (list, tuple)) and len(pool) == 2:
            pool = {"base": pool[0], "size": pool[1]}
        if not isinstance(pool, dict) or set(pool) != {"base", "size"}:
            raise ConfigError(f"{key}: each pool is a table with base and size")
        try:
            base = ipaddress.ip_network(str(pool["base"]))
        except ValueError as exc:
            raise ConfigError(f"{key}: invalid base {pool['base']!r}: {exc}") from None
        size = pool["size"]
        if isinstance(size, bool) or not isinstance(size, int) or not base.prefixlen <= size <= base.max_prefixlen:
            raise ConfigError(f"{key}: invalid size {size!r} for base {base}")
        out.append((str(base), size))
    return tuple(out)


def read_file(path: Path) -> dict[str, Any]:
    """Parse a config file into field values; unknown keys are errors."""
    import tomllib  # here: a daemon without a config file never needs it (idle memory)

    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: {exc}") from None
    unknown = sorted(set(raw) - set(FILE_KEYS) - set(KEY_ALIASES))
    if unknown:
        raise ConfigError(f"config file {path}: unknown option(s): {', '.join(unknown)}")
    for alias, key in KEY_ALIASES.items():
        if alias in raw:
            if key in raw:
                raise ConfigError(f"config file {path}: {key} and {alias} are the same option: give one")
            raw[key] = raw.pop(alias)
    return {FILE_KEYS[k]: _coerce(FILE_KEYS[k], v) for k, v in raw.items()}


def build(flags: dict[str, Any], config_file: Path | None = None) -> DaemonConfig:
    """Merge flags (only those the user set) with the config file, dockerd-style."""
    values: dict[str, Any] = {}
    if config_file is not None:
        values = read_file(config_file)
    known = {f.name for f in dataclasses.fields(DaemonConfig)}
    clash = sorted(FIELD_TO_KEY.get(k, k) for k in flags if k in values)
    if clash:
        raise ConfigError(
            "the following directives are specified both as a flag and in the configuration "
            f"file: {', '.join(clash)} (from file: {config_file})"
        )
    for name, value in flags.items():
        if name not in known:
            raise ConfigError(f"unknown option {name!r}")
        values[name] = _coerce(name, value)
    values["config_file"] = config_file
    if values.get("debug"):
        values.setdefault("log_level", "debug")
    return DaemonConfig(**values)


def parse_size(text: str) -> int:
    """Docker's human sizes: ``10m``, ``1g``, ``512k``, ``100`` (bytes)."""
    units = {"b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    s = text.strip().lower().removesuffix("b").removesuffix("i") if text else ""  # go-units: 10m, 10mb, 10mi, 10mib
    try:
        if s and s[-1] in units:
            return int(float(s[:-1]) * units[s[-1]])
        return int(s)
    except ValueError:
        raise ConfigError(f"invalid size: {text!r}") from None
