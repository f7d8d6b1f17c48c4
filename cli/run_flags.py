"""The ``run``/``create`` flags beyond the basics of :mod:`create_flags`: one table row per flag
(docker's names and value syntax) naming the create-body field it fills, plus the small parsers
and validators of docker CLI 28 (``cli/command/container/opts.go``, ``opts/*.go``) where the
mapping is not a plain copy. Bad values are usage errors with docker's wording.

What the docker CLI sends was checked by capturing its request bodies; a flag the daemon
refuses (``--gpus``, ``--storage-opt``, ``--cgroup-parent``, ...) is still sent, so the
refusal is the daemon's, in Docker's words.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
from typing import Any, Callable, Iterable, Mapping

import click

from . import create_flags


def bad(value: str, flag: str, why: str) -> click.UsageError:
    """pflag's wording for a value a flag's own parser refused."""
    return click.UsageError(f'invalid argument "{value}" for "{flag}" flag: {why}')


# -- parsers of one value ------------------------------------------------------------------------


def ip_address(text: str) -> str:
    """Go's ``net.ParseIP(...).String()``: canonical form, IPv4-mapped IPv6 as IPv4."""
    ip = ipaddress.ip_address(text.strip())
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        return str(ip.ipv4_mapped)
    return str(ip)


def dns(text: str) -> str:
    try:
        return ip_address(text)
    except ValueError:
        raise bad(text, "--dns", f"IP address is not correctly formatted: {text}") from None


#: docker's domain pattern (a plain string: ``re`` compiles and caches it on first use, not at start-up)
_DOMAIN = (r"^((?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9\-]*[a-zA-Z0-9])"
           r"(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9\-]*[a-zA-Z0-9]))*)\.?\s*$")


def dns_search(text: str) -> str:
    value = text.strip(" ")
    if value == ".":
        return value
    m = re.match(_DOMAIN, value)
    if not re.search("[a-zA-Z]", value) or not m or len(m.group(1)) >= 255:
        raise bad(text, "--dns-search", f"{text} is not a valid domain")
    return m.group(1)


def extra_host(text: str) -> str:
    """``host:ip`` or ``host=ip`` (IPv6 maybe in brackets, or ``host-gateway``) -> ``host:ip``."""
    name, sep, addr = text.partition("=")
    if not sep:
        name, sep, addr = text.partition(":")
    if not sep or not name or ":" in name:
        raise bad(text, "--add-host", f'bad format for add-host: "{text}"')
    if addr != "host-gateway":
        if addr.startswith("[") and addr.endswith("]"):
            addr = addr[1:-1]
        try:
            ip_address(addr)
        except ValueError:
            raise bad(text, "--add-host", f'invalid IP address in add-host: "{addr}"') from None
    return f"{name}:{addr}"


def link(text: str) -> str:
    if not text:
        raise bad(text, "--link", "empty string specified for links")
    if text.count(":") > 1:
        raise bad(text, "--link", f"bad format for links: {text}")
    return text


_IPC_SYSCTLS = {"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
                "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"}


def sysctl(text: str) -> str:
    """The sysctls docker lets through (namespaced ones); the daemon decides what it can set."""
    key, sep, _ = text.partition("=")
    if not sep or not (key in _IPC_SYSCTLS or key.startswith(("net.", "fs.mqueue."))):
        raise bad(text, "--sysctl", f"sysctl '{text}' is not allowed")
    return text


_CGROUP_RULE = r"^[acb] ([0-9]+|\*):([0-9]+|\*) [rwm]{1,3}$"


def device_cgroup_rule(text: str) -> str:
    if not re.match(_CGROUP_RULE, text):
        raise bad(text, "--device-cgroup-rule", f"invalid device cgroup format '{text}'")
    return text


def _device_mode(mode: str) -> bool:
    return bool(mode) and set(mode) <= set("rwm") and len(set(mode)) == len(mode)


def devices(text: str) -> dict[str, str]:
    """``/dev/x[:/dev/y][:rwm]`` -> a DeviceMapping (a ``/dev/x*`` glob is sent as it is, as
    docker CLI 28 does)."""
    parts = text.split(":")
    if len(parts) > 3 or not parts[0]:
        raise click.UsageError(f"bad format for path: {text}")
    src, dst, mode = parts[0], "", "rwm"
    if len(parts) == 3:
        dst, mode = parts[1], parts[2]
        if not _device_mode(mode):
            raise click.UsageError(f"bad mode specified: {mode}")
    elif len(parts) == 2:
        if _device_mode(parts[1]):
            mode = parts[1]
        else:
            dst = parts[1]
    if not posixpath.isabs(dst or src):
        raise click.UsageError(f"{dst or src} is not an absolute path")
    if src.endswith("*") and dst:
        raise click.UsageError(f"device with * suffix can't have dst: {text}")
    return {"PathOnHost": src, "PathInContainer": dst or src, "CgroupPermissions": mode}


def _device_path(text: str, flag: str) -> tuple[str, str]:
    path, sep, value = text.partition(":")
    if not sep or not path:
        raise bad(text, flag, f"bad format: {text}")
    if not path.startswith("/dev/"):
        raise bad(text, flag, f"bad format for device path: {text}")
    return path, value


def weight_device(text: str) -> dict[str, Any]:
    path, value = _device_path(text, "--blkio-weight-device")
    if not value.isdigit() or not (int(value) == 0 or 10 <= int(value) <= 1000):
        raise bad(text, "--blkio-weight-device", f"invalid weight for device: {text}")
    return {"Path": path, "Weight": int(value)}


def rate_device(flag: str, sizes: bool) -> Callable[[str], dict[str, Any]]:
    """``/dev/sda:1mb`` for the ``-bps`` flags, ``/dev/sda:100`` for the ``-iops`` ones."""
    def parse(text: str) -> dict[str, Any]:
        path, value = _device_path(text, flag)
        usage = ("<device-path>:<number>[<unit>]. Number must be a positive integer. Unit is optional and can be "
                 "kb, mb, or gb") if sizes else "<device-path>:<number>. Number must be a positive integer"
        try:
            rate = create_flags.parse_size(value, flag) if sizes else int(value)
        except (click.BadParameter, ValueError):
            rate = -1
        if rate < 0 or not value:
            raise bad(text, flag, f"invalid rate for device: {text}. The correct format is {usage}")
        return {"Path": path, "Rate": rate}
    return parse


def gpus(text: str) -> dict[str, Any]:
    """docker's ``GpuOpts``: ``all``, ``2``, ``device=0``, ``driver=x,count=2,capabilities=a``."""
    import csv

    request: dict[str, Any] = {"Driver": "", "Count": 0, "DeviceIDs": None, "Capabilities": None, "Options": {}}
    seen: set[str] = set()

    def count(value: str) -> int:
        if value == "all":
            return -1
        try:
            return int(value)
        except ValueError:
            raise bad(text, "--gpus", f'invalid count ({value}): value must be either "all" or an integer: '
                                      "invalid syntax") from None

    for field in next(csv.reader([text])):
        key, sep, value = field.partition("=")
        if key in seen:
            raise bad(text, "--gpus", f"gpu request key '{key}' can be specified only once")
        seen.add(key)
        if not sep:
            seen.add("count")
            request["Count"] = count(key)
        elif key == "driver":
            request["Driver"] = value
        elif key == "count":
            request["Count"] = count(value)
        elif key == "device":
            request["DeviceIDs"] = value.split(",")
        elif key == "capabilities":
            request["Capabilities"] = [[*value.split(","), "gpu"]]
        elif key == "options":
            request["Options"] = kv_map(next(csv.reader([value])))
        else:
            raise bad(text, "--gpus", f"unexpected key '{key}' in '{field}'")
    if "count" not in seen and request["DeviceIDs"] is None:
        request["Count"] = 1
    request["Capabilities"] = request["Capabilities"] or [["gpu"]]
    return request


def mac_address(text: str) -> str:
    if not re.match(r"^[0-9a-fA-F]{2}([:-])[0-9a-fA-F]{2}(\1[0-9a-fA-F]{2}){4}$", text):
        raise click.UsageError(f"{text} is not a valid mac address")
    return text


def mode(flag: str, what: str, allowed: tuple[str, ...], container: bool = False) -> Callable[[str], str]:
    """``--pid``/``--uts``/``--userns``/``--cgroupns``: docker's ``Valid()`` of each mode."""
    def check(text: str) -> str:
        if text in allowed or (container and text.startswith("container:") and text != "container:"):
            return text
        raise click.UsageError(f"{flag}: invalid {what} mode")
    return check


def swappiness(value: int) -> int:
    if value != -1 and not 0 <= value <= 100:
        raise click.UsageError(f"invalid value: {value}. Valid memory swappiness range is 0-100")
    return value


def kv_map(items: Iterable[str]) -> dict[str, str]:
    """docker's ``ConvertKVStringsToMap``: ``k=v``; a bare ``k`` maps to ``""``."""
    out: dict[str, str] = {}
    for item in items:
        key, _, value = item.partition("=")
        out[key] = value
    return out


def storage_opts(items: Iterable[str]) -> dict[str, str]:
    if any("=" not in i for i in items):
        raise click.UsageError("invalid storage option")
    return kv_map(items)


def read_kv_file(path: str) -> list[str]:
    """A ``--label-file`` (docker's key/value file): ``k=v`` a line, ``#`` comments, blank lines;
    a line without ``=`` sets nothing, as in docker CLI 28."""
    try:
        with open(path, encoding="utf-8-sig") as f:
            text = f.read()
    except OSError as exc:
        raise click.UsageError(f"open {path}: {(exc.strerror or str(exc)).lower()}") from None
    out = []
    for raw in text.splitlines():
        line = raw.lstrip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key = key.lstrip(" \t")
        if any(c in key for c in " \t"):
            raise click.UsageError(f"invalid env file ({path}): variable '{key}' contains whitespaces")
        if not key:
            raise click.UsageError(f"invalid env file ({path}): no variable name on line '{line}'")
        if sep:  # a bare key (docker would look it up in an environment) is dropped for labels
            out.append(f"{key}={value}")
    return out


# -- the table -----------------------------------------------------------------------------------


class Flag:
    """One flag: its click declarations, the body field (``Config`` or ``HostConfig.<Field>``)
    it fills, and how: ``each`` parses one value (repeatable flags: each occurrence),
    ``whole`` turns all of them (or the single value) into the field's value. (A plain class:
    a dataclass costs a millisecond at every CLI start.)"""

    def __init__(self, decls: tuple[str, ...], field: str, help: str, *, multiple: bool = False, type: Any = None,
                 is_flag: bool = False, each: Callable[[Any], Any] | None = None,
                 whole: Callable[[Any], Any] | None = None) -> None:
        self.decls, self.field, self.help, self.multiple, self.type = decls, field, help, multiple, type
        self.is_flag, self.each, self.whole = is_flag, each, whole
        self.dest = next(d for d in decls if d.startswith("--"))[2:].replace("-", "_")

    def option(self) -> Callable[[Any], Any]:
        kw: dict[str, Any] = {"help": self.help}
        if self.is_flag:
            kw["is_flag"] = True
        elif self.multiple:
            kw["multiple"] = True
        if self.type is not None:
            kw["type"] = self.type
        return click.option(*self.decls, self.dest, **kw)


def _size(flag: str) -> Callable[[str], int]:
    return lambda text: create_flags.parse_size(text, flag)


FLAGS = [
    # Config
    Flag(("--domainname",), "Domainname", "Container NIS domain name"),
    # HostConfig: names and namespaces
    Flag(("--add-host",), "HostConfig.ExtraHosts", "Add a custom host-to-IP mapping (host:ip)", multiple=True,
         each=extra_host),
    Flag(("--dns",), "HostConfig.Dns", "Set custom DNS servers", multiple=True, each=dns),
    Flag(("--dns-option", "--dns-opt"), "HostConfig.DnsOptions", "Set DNS options", multiple=True),
    Flag(("--dns-search",), "HostConfig.DnsSearch", "Set custom DNS search domains", multiple=True, each=dns_search),
    Flag(("--link",), "HostConfig.Links", "Add link to another container", multiple=True, each=link),
    Flag(("--pid",), "HostConfig.PidMode", "PID namespace to use", each=mode("--pid", "PID", ("", "host"), True)),
    Flag(("--ipc",), "HostConfig.IpcMode", "IPC mode to use"),
    Flag(("--uts",), "HostConfig.UTSMode", "UTS namespace to use", each=mode("--uts", "UTS", ("", "host"))),
    Flag(("--userns",), "HostConfig.UsernsMode", "User namespace to use",
         each=mode("--userns", "USER", ("", "host"))),
    Flag(("--cgroupns",), "HostConfig.CgroupnsMode", "Cgroup namespace to use (host|private)",
         each=mode("--cgroupns", "CGROUP", ("", "host", "private"))),
    Flag(("--group-add",), "HostConfig.GroupAdd", "Add additional groups to join", multiple=True),
    Flag(("--sysctl",), "HostConfig.Sysctls", "Sysctl options", multiple=True, each=sysctl, whole=kv_map),
    Flag(("--annotation",), "HostConfig.Annotations",
         "Add an annotation to the container (passed through to the OCI runtime)", multiple=True, whole=kv_map),
    # devices
    Flag(("--device",), "HostConfig.Devices", "Add a host device to the container", multiple=True, each=devices),
    Flag(("--device-cgroup-rule",), "HostConfig.DeviceCgroupRules", "Add a rule to the cgroup allowed devices list",
         multiple=True, each=device_cgroup_rule),
    Flag(("--gpus",), "HostConfig.DeviceRequests", "GPU devices to add to the container ('all' to pass all GPUs)",
         multiple=True, each=gpus),
    # logging, storage, runtime
    Flag(("--log-driver",), "HostConfig.LogConfig.Type", "Logging driver for the container"),
    Flag(("--log-opt",), "HostConfig.LogConfig.Config", "Log driver options", multiple=True, whole=kv_map),
    Flag(("--storage-opt",), "HostConfig.StorageOpt", "Storage driver options for the container", multiple=True,
         whole=storage_opts),
    Flag(("--shm-size",), "HostConfig.ShmSize", "Size of /dev/shm", each=_size("--shm-size")),
    Flag(("--runtime",), "HostConfig.Runtime", "Runtime to use for this container"),
    Flag(("--isolation",), "HostConfig.Isolation", "Container isolation technology"),
    Flag(("--cgroup-parent",), "HostConfig.CgroupParent", "Optional parent cgroup for the container"),
    Flag(("--oom-score-adj",), "HostConfig.OomScoreAdj", "Tune host's OOM preferences (-1000 to 1000)", type=int),
    Flag(("--oom-kill-disable",), "HostConfig.OomKillDisable", "Disable OOM Killer", is_flag=True),
    # resources
    Flag(("--memory-reservation",), "HostConfig.MemoryReservation", "Memory soft limit",
         each=_size("--memory-reservation")),
    Flag(("--memory-swappiness",), "HostConfig.MemorySwappiness", "Tune container memory swappiness (0 to 100)",
         type=int, each=swappiness),
    Flag(("--cpu-period",), "HostConfig.CpuPeriod", "Limit CPU CFS (Completely Fair Scheduler) period", type=int),
    Flag(("--cpu-quota",), "HostConfig.CpuQuota", "Limit CPU CFS (Completely Fair Scheduler) quota", type=int),
    Flag(("--cpu-rt-period",), "HostConfig.CpuRealtimePeriod", "Limit CPU real-time period in microseconds",
         type=int),
    Flag(("--cpu-rt-runtime",), "HostConfig.CpuRealtimeRuntime", "Limit CPU real-time runtime in microseconds",
         type=int),
    Flag(("--cpuset-mems",), "HostConfig.CpusetMems", "MEMs in which to allow execution (0-3, 0,1)"),
    Flag(("--blkio-weight",), "HostConfig.BlkioWeight",
         "Block IO (relative weight), between 10 and 1000, or 0 to disable", type=click.IntRange(0, 65535)),
    Flag(("--blkio-weight-device",), "HostConfig.BlkioWeightDevice", "Block IO weight (relative device weight)",
         multiple=True, each=weight_device),
    Flag(("--device-read-bps",), "HostConfig.BlkioDeviceReadBps", "Limit read rate (bytes per second) from a device",
         multiple=True, each=rate_device("--device-read-bps", True)),
    Flag(("--device-write-bps",), "HostConfig.BlkioDeviceWriteBps", "Limit write rate (bytes per second) to a device",
         multiple=True, each=rate_device("--device-write-bps", True)),
    Flag(("--device-read-iops",), "HostConfig.BlkioDeviceReadIOps", "Limit read rate (IO per second) from a device",
         multiple=True, each=rate_device("--device-read-iops", False)),
    Flag(("--device-write-iops",), "HostConfig.BlkioDeviceWriteIOps", "Limit write rate (IO per second) to a device",
         multiple=True, each=rate_device("--device-write-iops", False)),
    # client side, but sent too (docker's inspect shows it)
    Flag(("--cidfile",), "HostConfig.ContainerIDFile", "Write the container ID to the file"),
]

#: Flags whose values go to the first network's endpoint (``NetworkingConfig``), not the table.
ENDPOINT_OPTIONS = [
    click.option("--mac-address", help="Container MAC address (e.g., 92:d0:c6:0a:29:33)"),
    click.option("--ip6", help="IPv6 address (e.g., 2001:db8::33)"),
    click.option("--link-local-ip", multiple=True, help="Container IPv4/IPv6 link-local addresses"),
]

OPTIONS = [
    *(f.option() for f in FLAGS),
    *ENDPOINT_OPTIONS,
    click.option("-a", "--attach", multiple=True, help="Attach to STDIN, STDOUT or STDERR"),
    click.option("--label-file", multiple=True, help="Read in a line delimited file of labels"),
]


def _set(body: dict[str, Any], field: str, value: Any) -> None:
    *parents, last = field.split(".")
    node = body
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


def apply(body: dict[str, Any], o: Mapping[str, Any]) -> None:
    """Fill ``body`` (a create body being built) from the table's flags and the endpoint flags."""
    for flag in FLAGS:
        value = o.get(flag.dest)
        if value is None or value is False or value == "" or (flag.multiple and not value):
            continue
        if flag.each is not None:
            value = [flag.each(v) for v in value] if flag.multiple else flag.each(value)
        elif flag.multiple:
            value = list(value)
        if flag.whole is not None:
            value = flag.whole(value)
        _set(body, flag.field, value)
    log = (body.get("HostConfig") or {}).get("LogConfig")
    if log is not None:
        log.setdefault("Type", "")
        log.setdefault("Config", {})
        if log["Type"] == "none" and log["Config"]:
            raise click.UsageError("invalid logging opts for driver none")
    _apply_endpoint(body, o)


def _apply_endpoint(body: dict[str, Any], o: Mapping[str, Any]) -> None:
    """``--mac-address``, ``--ip6``, ``--link-local-ip`` (and ``--link`` on a user-defined
    network) go to the container's first network's endpoint, as docker CLI 28 sends them."""
    hc = body.setdefault("HostConfig", {})
    network = hc.get("NetworkMode") or "default"
    endpoint: dict[str, Any] = {}
    if o.get("mac_address"):
        endpoint["MacAddress"] = mac_address(o["mac_address"])
    ipam = {}
    if o.get("ip6"):
        ipam["IPv6Address"] = o["ip6"]
    if o.get("link_local_ip"):
        ipam["LinkLocalIPs"] = list(o["link_local_ip"])
    if ipam:
        endpoint["IPAMConfig"] = ipam
    user_defined = network not in ("default", "bridge", "host", "none") and not network.startswith("container:")
    if hc.get("Links") and user_defined:
        endpoint["Links"] = list(hc["Links"])
    if not endpoint:
        return
    current = body.setdefault("NetworkingConfig", {}).setdefault("EndpointsConfig", {}).setdefault(network, {})
    current.setdefault("IPAMConfig", {}).update(endpoint.pop("IPAMConfig", {}))
    if not current["IPAMConfig"]:
        del current["IPAMConfig"]
    current.update(endpoint)


def attach_streams(o: Mapping[str, Any]) -> tuple[bool, bool, bool]:
    """(stdin, stdout, stderr) to attach, as docker computes them from ``-a`` and ``-i``."""
    streams = set()
    for s in o.get("attach") or ():
        if s.lower() not in ("stdin", "stdout", "stderr"):
            raise bad(s, "-a, --attach", "valid streams are STDIN, STDOUT and STDERR")
        streams.add(s.lower())
    if not streams:
        return bool(o.get("interactive")), True, True
    return "stdin" in streams or bool(o.get("interactive")), "stdout" in streams, "stderr" in streams


def capabilities(names: Iterable[str]) -> list[str]:
    """``--cap-add``/``--cap-drop`` as docker CLI 28 sends them: upper case, ``CAP_`` prefixed
    (``ALL`` as it is), sorted, no duplicates."""
    def norm(c: str) -> str:
        c = c.strip().upper()
        return c if c == "ALL" or c.startswith("CAP_") else "CAP_" + c

    return sorted({norm(c) for c in names})


def localhost_dns_warnings(body: Mapping[str, Any]) -> list[str]:
    """The docker CLI's own warning for a loopback ``--dns`` (the first one only)."""
    for server in (body.get("HostConfig") or {}).get("Dns") or ():
        if ipaddress.ip_address(server).is_loopback:
            return [f"Localhost DNS ({server}) may fail in containers."]
    return []


def labels(o: Mapping[str, Any]) -> list[str]:
    """``--label-file`` lines first, then ``-l`` (later ones win)."""
    return [line for path in o.get("label_file") or () for line in read_kv_file(path)] + list(o.get("label") or ())
