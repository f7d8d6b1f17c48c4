"""What a container sees at /sys/fs/cgroup, and its cgroup namespace (``--cgroupns``).

Docker's default is a private cgroup namespace on cgroup v2 hosts and the host's on v1;
either way the container sees its own cgroups at /sys/fs/cgroup (so a JVM, Go's automaxprocs
or ``nproc``-style tools find their limits). :func:`view` works that out from the host's
mount table and the ``cgroup.procs`` files the cgroup driver gave the container: each
hierarchy the container is in appears under its host name (``memory``, ``cpu,cpuacct``,
``unified``...), with the host's symlinks (``cpu -> cpu,cpuacct``).
"""

from __future__ import annotations

import os
import re
from typing import Any

from ..drivers.runtime import CgroupMount
from ..errors import InvalidArgument

MODES = ("private", "host")
HOST_ROOT = "/sys/fs/cgroup"


def default_mode(cgroup_version: int) -> str:
    return "private" if cgroup_version == 2 else "host"


def normalize_mode(hc: dict[str, Any], cgroup_version: int) -> None:
    """Fill HostConfig.CgroupnsMode with the daemon's default and refuse unknown modes."""
    mode = hc.get("CgroupnsMode") or ""
    if mode == "":
        mode = default_mode(cgroup_version)
    if mode not in MODES:
        raise InvalidArgument(f"invalid cgroup namespace mode: {mode}")
    hc["CgroupnsMode"] = mode


def _unescape(path: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), path)


def cgroup_mounts(mountinfo: str) -> list[tuple[str, str, str]]:
    """``(mount point, fstype, controllers)`` of every cgroup and cgroup2 mount."""
    out = []
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        a, b = left.split(), right.split()
        if not sep or len(a) < 5 or len(b) < 3 or b[0] not in ("cgroup", "cgroup2"):
            continue
        opts = [o for o in b[2].split(",") if o not in ("rw", "ro") and (b[0] == "cgroup")]
        controllers = [o for o in opts if o.startswith("name=") or "=" not in o and o not in _GENERIC]
        out.append((_unescape(a[4]), b[0], ",".join(controllers)))
    return out


# v1 mount options that are not controllers
_GENERIC = {"xattr", "noprefix", "clone_children", "cpuset_v2_mode", "nsdelegate", "favordynmods",
            "memory_localevents", "memory_recursiveprot", "memory_hugetlb_accounting"}


def view(procs_files: list[str], mountinfo: str | None = None,
         root: str = HOST_ROOT) -> tuple[list[CgroupMount], list[tuple[str, str]]]:
    """The hierarchies to show the container and the host's symlinks between them. Without
    ``mountinfo``, the host's cgroup mounts and the symlinks under ``root`` are read once
    and kept (they do not change while the daemon runs; the mount table grows with every
    running container, and was read at every start): read again when a procs file lies
    under none of the kept hierarchies."""
    if not procs_files:
        return [], []
    if mountinfo is not None:
        return _view(procs_files, _sorted_mounts(mountinfo), lambda: _symlinks(root), root)
    key = root
    kept = _HOST.get(key)
    if kept is None or not all(_under_any(os.path.dirname(p), kept[0]) for p in procs_files):
        with open("/proc/self/mountinfo") as f:
            kept = (_sorted_mounts(f.read()), _symlinks(root))
        _HOST[key] = kept
    mounts, links = kept
    return _view(procs_files, mounts, lambda: links, root)


# root -> (the host's cgroup mounts, longest first; the symlinks under root)
_HOST: dict[str, tuple[list[tuple[str, str, str]], list[tuple[str, str]]]] = {}


def _sorted_mounts(mountinfo: str) -> list[tuple[str, str, str]]:
    return sorted(cgroup_mounts(mountinfo), key=lambda m: len(m[0]), reverse=True)


def _under_any(d: str, mounts: list[tuple[str, str, str]]) -> bool:
    return any(d == point or d.startswith(point.rstrip("/") + "/") for point, _, _ in mounts)


def _symlinks(root: str) -> list[tuple[str, str]]:
    """``(name, target)`` of each symlink directly under ``root``, by name."""
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError:
        return []
    out = []
    for e in entries:
        if e.is_symlink():
            try:
                out.append((e.name, os.readlink(e.path)))
            except OSError:
                continue
    return out


def _view(procs_files: list[str], mounts: list[tuple[str, str, str]],
          symlinks: Any, root: str) -> tuple[list[CgroupMount], list[tuple[str, str]]]:
    out: list[CgroupMount] = []
    for procs in procs_files:
        d = os.path.dirname(procs)
        for point, fstype, controllers in mounts:
            if d == point or d.startswith(point.rstrip("/") + "/"):
                if point == root or point.startswith(root + "/"):
                    name = os.path.relpath(point, root) if point != root else ""
                    if name not in [m.name for m in out]:
                        out.append(CgroupMount(name, fstype, controllers, d))
                break
    names = {m.name for m in out}
    links: list[tuple[str, str]] = []
    if "" not in names:
        for name, target in symlinks():
            if name not in names and target in names:
                links.append((target, name))
    return out, links
