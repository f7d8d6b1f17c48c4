"""What Dockyard left on the machine, judged only by what *we* own.

The suite (``tests/conftest.py``) and the chaos harness (``tests/chaos``, ``bench/chaos.py``)
check at the end that their daemons left nothing behind: no mount, cgroup, shim or daemon
process, bridge or veth, nftables table, iptables accept, pinned network namespace. Other
dockyardds may run on the same machine at the same time (a user's own service, another test
run): what they hold must never count. So the check compares two :class:`Snapshot` s (one at
the start, one at the end) and counts only what is new *and* attributable to an
:class:`Owner`, built from the directories the checked daemons used (pytest's base temp dir,
a chaos run's directory):

* mounts, pinned namespaces and processes by path: a mount point, or a path in a shim's or a
  daemon's command line, under one of the owner's directories;
* cgroups of a container whose record is in one of the owner's data roots (whatever its
  ``--cgroup-parent``);
* cgroups, bridges ``dy<instance>-br0`` and nftables tables ``dockyard_<instance>[_ports]``
  (and the iptables accepts tagged with them) by *instance*: the 8 hex digits of sha256 of a
  data root, which the daemon puts in every host-wide name it makes (``instance_of`` in
  ``dockyard.networks.service``, ``Daemon._driver_config`` for the cgroup parent
  ``dockyard-<instance>``);
* other bridges and veths (``dy-<network id>``, ``dyv<endpoint id>``) by the owner's records
  (each data root's ``bridges.json`` and network records), by the bridge a veth is enslaved
  to, and, when that says nothing, by being new while no foreign dockyardd runs (``strict``).

Data roots are found under the owner's directories by their ``dockyardd.lock``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

CGROUP_ROOT = Path("/sys/fs/cgroup")
LOCK_NAME = "dockyardd.lock"
_INSTANCE = re.compile(r"^dockyard-([0-9a-f]{8})$")
_BRIDGE_INSTANCE = re.compile(r"^dy([0-9a-f]{8})-br0$")
_TABLE_INSTANCE = re.compile(r"^dockyard_([0-9a-f]{8})(?:_ports)?$")
_CID = re.compile(r"^[0-9a-f]{64}$")
_ACCEPT_TAG = re.compile(r"dockyard:dockyard_([0-9a-f]{8})\b")  # net_bridge's ForwardAccepts comment
_SKIP_DIRS = {"storage", "image", "containers", "volumes", "_data", "rootfs", "overlay", "vfs", "blobs",
              "runtime", "netns", "network", "networks", "cgroups", "logs"}


def instance_of(data_root: Path) -> str:
    """As ``dockyard.networks.service.instance_of`` for a non-default data root."""
    return hashlib.sha256(str(Path(data_root).resolve()).encode()).hexdigest()[:8]


@dataclass
class Snapshot:
    """What of Dockyard's kind is on the machine at one moment (anyone's)."""

    mounts: set[str] = field(default_factory=set)  # mount points (nsfs ones are the pinned netns)
    netns: set[str] = field(default_factory=set)  # nsfs mount points under a .../netns/ directory
    cgroups: set[str] = field(default_factory=set)  # "<controller dir>/<path>" with a dockyard* component
    processes: dict[int, str] = field(default_factory=dict)  # pid -> cmdline of shims and daemons
    links: dict[str, str] = field(default_factory=dict)  # dy*/dockyard* link -> the bridge it is enslaved to
    tables: set[str] = field(default_factory=set)  # nftables "dockyard*" tables (ip; ip6 ones as "name@ip6")
    accepts: set[str] = field(default_factory=set)  # iptables FORWARD rules tagged "dockyard:<table>"


@dataclass
class Owner:
    """What the daemons being judged used: directories, and what they recorded there."""

    dirs: list[str]
    data_roots: list[Path] = field(default_factory=list)
    instances: set[str] = field(default_factory=set)
    bridges: set[str] = field(default_factory=set)
    containers: set[str] = field(default_factory=set)  # ids of the containers their records know

    def owns_path(self, path: str) -> bool:
        return any(path == d or path.startswith(d.rstrip("/") + "/") for d in self.dirs)


# -- observing -------------------------------------------------------------------------------


def _unescape(path: str) -> str:
    return path.encode().decode("unicode_escape") if "\\" in path else path


def snapshot(iptables: bool = True) -> Snapshot:
    s = Snapshot()
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                parts = line.split()
                point = _unescape(parts[4])
                fstype = parts[parts.index("-") + 1] if "-" in parts else ""
                s.mounts.add(point)
                if fstype == "nsfs" and "/netns/" in point:
                    s.netns.add(point)
    except OSError:
        pass
    for base in _subdirs(CGROUP_ROOT):
        for first in _subdirs(base):
            if first.name.startswith("dockyard"):
                s.cgroups.add(str(first))
                s.cgroups |= {str(p) for p in _subdirs(first)}
                continue
            for second in _subdirs(first):  # a --cgroup-parent: <parent>/<container id>, 3 deep at most
                if second.name.startswith("dockyard") or _CID.match(second.name):
                    s.cgroups.add(str(second))
                elif not first.name.startswith(("system.slice", "user.slice")):
                    s.cgroups |= {str(p) for p in _subdirs(second) if _CID.match(p.name)}
            if _CID.match(first.name):
                s.cgroups.add(str(first))
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if is_dockyard_process(argv):
            s.processes[int(pid)] = b" ".join(argv).decode(errors="replace").strip()
    net = Path("/sys/class/net")
    for link in os.listdir(net) if net.is_dir() else []:
        if link.startswith(("dy", "dockyard")):
            master = net / link / "master"
            s.links[link] = os.path.basename(os.readlink(master)) if master.is_symlink() else ""
    try:
        out = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        out = ""
    for line in out.splitlines():
        words = line.split()
        if len(words) == 3 and words[0] == "table" and words[1] in ("ip", "ip6") and words[2].startswith("dockyard"):
            s.tables.add(words[2] if words[1] == "ip" else f"{words[2]}@ip6")  # ip6: IPv6 networks' rules
    if iptables:
        try:
            out = subprocess.run(["iptables", "-w", "5", "-S", "FORWARD"], capture_output=True, text=True,
                                 timeout=30).stdout
        except (OSError, subprocess.TimeoutExpired):
            out = ""
        s.accepts = {line for line in out.splitlines() if "dockyard:" in line}
    return s


def _subdirs(path: Path) -> list[Path]:
    """Directories in ``path``; none if it went away meanwhile (cgroups come and go)."""
    try:
        with os.scandir(path) as it:
            return [Path(e.path) for e in it if e.is_dir(follow_symlinks=False)]
    except OSError:
        return []


def is_dockyard_process(argv: list[bytes]) -> bool:
    """A shim (``dockyard-shim-<hash> <spec>``) or a daemon (``python -m dockyard ...`` or
    ``dockyardd``), by its command line."""
    if not argv or not argv[0]:
        return False
    prog = os.path.basename(argv[0])
    if prog.startswith(b"dockyard-shim") or prog == b"dockyardd":
        return True
    head = argv[:4]
    return b"-m" in head and head.index(b"-m") + 1 < len(argv) and argv[head.index(b"-m") + 1] == b"dockyard"


def find_data_roots(dirs: Iterable[Path], max_depth: int = 6) -> list[Path]:
    """Data roots (directories holding ``dockyardd.lock``) under ``dirs``, without walking
    into what a data root holds."""
    found: list[Path] = []
    for top in dirs:
        top = Path(top)
        if not top.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(top):
            if LOCK_NAME in filenames:
                found.append(Path(dirpath))
                dirnames[:] = []
                continue
            if len(Path(dirpath).relative_to(top).parts) >= max_depth:
                dirnames[:] = []
            else:
                dirnames[:] = [n for n in dirnames if n not in _SKIP_DIRS]
    return found


def recorded_bridges(data_root: Path) -> set[str]:
    """The bridges a data root's daemon made or meant to make: the bridge driver's intent
    list and the bridge name of every network record."""
    names: set[str] = set()
    try:
        names |= set(json.loads((data_root / "network" / "bridge" / "bridges.json").read_text()))
    except (OSError, ValueError, TypeError):
        pass
    for rec in (data_root / "networks").glob("*.json"):
        try:
            net = json.loads(rec.read_text())["net"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        name = (net.get("driver_state") or {}).get("bridge") or (net.get("options") or {}).get(
            "com.docker.network.bridge.name") or f"dy-{net.get('id', '')[:12]}"
        names.add(name)
    return names


def owner(dirs: Iterable[Path], data_roots: Iterable[Path] = ()) -> Owner:
    """The owner of ``dirs``: every data root found in them, and ``data_roots`` (known even if
    they are gone by now: their instance still names cgroups, bridges and tables)."""
    dirs = [Path(d) for d in dirs]
    roots = find_data_roots(dirs)
    roots += [Path(r) for r in data_roots if Path(r) not in roots]
    o = Owner(dirs=[str(d.resolve()) if d.exists() else str(d) for d in dirs], data_roots=roots)
    o.instances = {instance_of(r) for r in roots}
    for r in roots:
        o.bridges |= recorded_bridges(r)
        for sub in (r / "containers", r.parent / "exec" / "runtime" / "native"):
            o.containers |= {p.name for p in _subdirs(sub) if _CID.match(p.name)}
    return o


# -- judging --------------------------------------------------------------------------------


def _instance_in(name: str, pattern: re.Pattern[str]) -> str | None:
    m = pattern.match(name)
    return m.group(1) if m else None


def _cgroup_instance(path: str) -> str | None:
    for part in Path(path).parts:
        inst = _instance_in(part, _INSTANCE)
        if inst is not None:
            return inst
    return None


def _process_paths(cmdline: str) -> list[str]:
    return [w for w in cmdline.split() if w.startswith("/")] + \
        [w.split("=", 1)[1] for w in cmdline.split() if "=/" in w]


def leaks(before: Snapshot, after: Snapshot, who: Owner, strict: bool | None = None) -> list[str]:
    """What is in ``after`` and not in ``before`` and belongs to ``who``, one line each.

    ``strict`` (default: no foreign dockyardd is running in ``after``) also counts new bridges
    and veths that no record attributes to anyone: with nobody else around, they are ours."""
    if strict is None:
        strict = not any(not any(who.owns_path(p) for p in _process_paths(cmd))
                         for cmd in after.processes.values() if "dockyard-shim" not in cmd)
    found: list[str] = []
    for point in sorted(after.mounts - before.mounts):
        if who.owns_path(point):
            found.append(f"{'netns' if point in after.netns else 'mount'}: {point}")
    for path in sorted(after.cgroups - before.cgroups):
        if _cgroup_instance(path) in who.instances or Path(path).name in who.containers:
            found.append(f"cgroup: {path}")
    for pid, cmd in sorted(after.processes.items()):
        if pid in before.processes and before.processes[pid] == cmd:
            continue
        if any(who.owns_path(p) for p in _process_paths(cmd)):
            found.append(f"process: {pid} {cmd}")
    owned_bridges = who.bridges | {f"dy{i}-br0" for i in who.instances}
    for link in sorted(set(after.links) - set(before.links)):
        master = after.links[link]
        inst = _instance_in(link, _BRIDGE_INSTANCE)
        if inst is not None:
            mine = inst in who.instances
        elif link in who.bridges or (master and master in owned_bridges):
            mine = True
        elif master and (_instance_in(master, _BRIDGE_INSTANCE) or master in before.links):
            mine = False  # enslaved to a bridge we can tell is someone else's
        else:
            mine = strict
        if mine:
            found.append(f"link: {link}" + (f" (on {master})" if master else ""))
    for table in sorted(after.tables - before.tables):
        name, _, family = table.partition("@")
        if _instance_in(name, _TABLE_INSTANCE) in who.instances:
            found.append(f"nft: table {family or 'ip'} {name}")
    for rule in sorted(after.accepts - before.accepts):
        m = _ACCEPT_TAG.search(rule)
        if m is not None and m.group(1) in who.instances:
            found.append(f"iptables: {rule}")
    return found
