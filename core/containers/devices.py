"""Devices of a container, as Docker decides them: ``--device``, ``--device-cgroup-rule``
and ``--privileged`` (moby daemon/oci_linux.go ``WithDevices``).

* Everybody gets the default nodes (null, zero, full, random, urandom, tty: made by the
  runtime) and the default devices-cgroup list (deny all, then moby's and runc's allow list:
  :data:`dockyard.drivers.cgroups.DEFAULT_DEVICE_RULES_HEAD`/``TAIL``).
* ``--device HOST[:CONTAINER[:PERMS]]`` (HostConfig.Devices): the host node is recreated
  (mknod) at CONTAINER with the host's type, numbers, mode and owner, plus an allow rule
  with PERMS; a directory adds every device node below it.
* ``--device-cgroup-rule 'c 1:11 rwm'`` (HostConfig.DeviceCgroupRules) adds allow rules.
* ``--privileged``: every host device in /dev and "allow all" (the two options above are
  then ignored, as Docker does).
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from typing import Any

from ..drivers.cgroups import ALLOW_ALL_DEVICES, DEFAULT_DEVICE_RULES_HEAD, DEFAULT_DEVICE_RULES_TAIL, DeviceRule
from ..drivers.runtime import DeviceNode
from ..errors import InvalidArgument

RULE_RE = re.compile(r"^([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})$")
# what runc's HostDevices skips under /dev: pseudo filesystems and the nodes the runtime makes
SKIP_DIRS = {"pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"}
SKIP_NODES = {"/dev/console", "/dev/ptmx"}


@dataclass
class DevicePlan:
    """The nodes to create in the container and the rules for its devices cgroup."""

    nodes: list[DeviceNode] = field(default_factory=list)
    rules: list[DeviceRule] = field(default_factory=list)


def parse_rule(text: Any) -> DeviceRule:
    """``"c 1:11 rwm"`` -> an allow rule (Docker's --device-cgroup-rule syntax)."""
    m = RULE_RE.match(text) if isinstance(text, str) else None
    if not m or len(set(m.group(4))) != len(m.group(4)):
        raise InvalidArgument(f"invalid device cgroup format '{text}'")
    num = lambda v: None if v == "*" else int(v)  # noqa: E731
    return DeviceRule(True, m.group(1), num(m.group(2)), num(m.group(3)), m.group(4))


def _node(host_path: str, container_path: str, st: os.stat_result) -> DeviceNode:
    return DeviceNode(container_path, "b" if stat.S_ISBLK(st.st_mode) else "c", os.major(st.st_rdev),
                      os.minor(st.st_rdev), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)


def _is_device(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)


def _walk(top: str, skip_dirs: set[str] | frozenset[str] = frozenset()) -> list[tuple[str, os.stat_result]]:
    """Every device node below ``top`` (symlinks not followed), sorted by path."""
    out = []
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = sorted(d for d in dirnames if d not in skip_dirs or dirpath != top)
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if _is_device(st):
                out.append((path, st))
    return out


def mapping_nodes(mapping: Any) -> tuple[list[DeviceNode], str]:
    """The nodes of one HostConfig.Devices entry and its cgroup permissions.

    Raises InvalidArgument (Docker's wording) for a malformed entry, a missing host path,
    or a host path that is neither a device nor a directory holding devices.
    """
    if not isinstance(mapping, dict) or not isinstance(mapping.get("PathOnHost"), str) or not mapping["PathOnHost"]:
        raise InvalidArgument("invalid device mapping: PathOnHost is required")
    host = mapping["PathOnHost"]
    inside = mapping.get("PathInContainer") or host
    perms = mapping.get("CgroupPermissions") or "rwm"
    if not isinstance(inside, str) or not inside.startswith("/") or os.path.normpath(inside) == "/":
        raise InvalidArgument(f"invalid device path in container: {inside}")
    if not isinstance(perms, str) or not re.fullmatch(r"[rwm]{1,3}", perms) or len(set(perms)) != len(perms):
        raise InvalidArgument(f"invalid device mode: {perms}")
    inside = os.path.normpath(inside)
    resolved = os.path.realpath(host)  # /dev/disk/by-id/... links: Docker follows them
    try:
        st = os.stat(resolved)
    except OSError as e:
        raise InvalidArgument(f'error gathering device information while adding custom device "{host}": '
                              f"{e.strerror.lower() if e.strerror else e}") from None
    if _is_device(st):
        return [_node(resolved, inside, st)], perms
    if stat.S_ISDIR(st.st_mode):
        nodes = [_node(p, inside + p[len(resolved):], s) for p, s in _walk(resolved)]
        if nodes:
            return nodes, perms
    raise InvalidArgument(f'error gathering device information while adding custom device "{host}": '
                          "not a device node")


def host_devices() -> list[DeviceNode]:
    """Every device node of the host's /dev, for privileged containers (runc's HostDevices)."""
    return [_node(p, p, s) for p, s in _walk("/dev", SKIP_DIRS) if p not in SKIP_NODES]


def _mappings(hc: dict[str, Any]) -> list[Any]:
    devices = hc.get("Devices") or []
    if not isinstance(devices, list):
        raise InvalidArgument("HostConfig.Devices must be a list")
    return devices


def _rules(hc: dict[str, Any]) -> list[DeviceRule]:
    rules = hc.get("DeviceCgroupRules") or []
    if not isinstance(rules, list):
        raise InvalidArgument("HostConfig.DeviceCgroupRules must be a list")
    return [parse_rule(r) for r in rules]


def validate(hc: dict[str, Any]) -> None:
    """At create: bad syntax and missing host devices are a 400 before anything exists."""
    for m in _mappings(hc):
        mapping_nodes(m)
    _rules(hc)


def plan(hc: dict[str, Any]) -> DevicePlan:
    """At start: the nodes and cgroup rules (the host is looked at again: a device that
    vanished since create is a 400 then)."""
    if hc.get("Privileged"):
        return DevicePlan(host_devices(), list(ALLOW_ALL_DEVICES))
    out = DevicePlan(rules=list(DEFAULT_DEVICE_RULES_HEAD))
    for m in _mappings(hc):
        nodes, perms = mapping_nodes(m)
        out.nodes.extend(nodes)
        out.rules.extend(DeviceRule(True, n.type, n.major, n.minor, perms) for n in nodes)
    out.rules.extend(_rules(hc))
    out.rules.extend(DEFAULT_DEVICE_RULES_TAIL)
    return out
