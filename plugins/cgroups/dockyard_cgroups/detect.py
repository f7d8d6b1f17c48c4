"""Which cgroup controllers live where: a pure function over /proc/self/mountinfo and /proc/cgroups."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

#: v1 controllers Dockyard uses
V1_CONTROLLERS = ("memory", "cpu", "cpuacct", "cpuset", "pids", "freezer", "blkio", "devices")


@dataclass
class Layout:
    """Where each controller is: ``v1`` maps a controller to its v1 mount point (co-mounted
    controllers share one); ``unified`` is the cgroup2 mount point (or None);
    ``v2_controllers`` are the controllers available in the unified tree; ``named`` maps a
    named v1 hierarchy (``systemd`` for ``name=systemd``) to its mount point: no controller,
    but OCI runtimes such as runc make every container's cgroup path there too."""

    v1: dict[str, str] = field(default_factory=dict)
    unified: str | None = None
    named: dict[str, str] = field(default_factory=dict)
    v2_controllers: set[str] = field(default_factory=set)

    @property
    def mode(self) -> str:
        """``"v1"``, ``"v2"``, ``"hybrid"`` (v1 controllers + a v2 tree) or ``"none"``."""
        if self.v1:
            return "hybrid" if self.unified else "v1"
        return "v2" if self.unified else "none"

    def memory_version(self) -> int | None:
        """1 or 2: the hierarchy that holds the memory controller (None if neither does)."""
        if "memory" in self.v1:
            return 1
        if self.unified and "memory" in self.v2_controllers:
            return 2
        return None


# never v2 controllers (perf_event is implicit on v2, net_cls/net_prio do not exist there)
_V1_ONLY = ("net_cls", "net_prio", "perf_event")


def _unescape(path: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), path)


def detect(mountinfo: str, proc_cgroups: str = "") -> Layout:
    """Parse the text of /proc/self/mountinfo and /proc/cgroups into a :class:`Layout`.

    A controller counts as v2 when /proc/cgroups lists it enabled with hierarchy 0 and a
    cgroup2 tree is mounted. Named v1 hierarchies (``name=systemd``) hold no controller: they
    are listed apart, in ``named``.
    """
    layout = Layout()
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        a, b = left.split(), right.split()
        if len(a) < 5 or len(b) < 3:
            continue
        fstype, mountpoint = b[0], _unescape(a[4])
        if fstype == "cgroup2" and layout.unified is None:
            layout.unified = mountpoint
        elif fstype == "cgroup":
            for opt in b[2].split(","):
                if opt.startswith("name="):
                    layout.named.setdefault(opt[5:], mountpoint)
                elif opt in V1_CONTROLLERS or opt in ("net_cls", "net_prio", "perf_event", "hugetlb", "rdma", "misc"):
                    layout.v1.setdefault(opt, mountpoint)
    if layout.unified:
        for line in proc_cgroups.splitlines():
            if line.startswith("#"):
                continue
            parts = line.split()
            if len(parts) >= 4 and parts[1] == "0" and parts[3] == "1" and parts[0] not in layout.v1 \
                    and parts[0] not in _V1_ONLY:
                layout.v2_controllers.add(parts[0])
    return layout


def host_layout() -> Layout:
    """:func:`detect` on this host's files (falls back to the root's cgroup.controllers
    when /proc/cgroups is missing, as on kernels that dropped it)."""
    mountinfo = Path("/proc/self/mountinfo").read_text()
    try:
        proc_cgroups = Path("/proc/cgroups").read_text()
    except OSError:
        proc_cgroups = ""
    layout = detect(mountinfo, proc_cgroups)
    if layout.unified and not proc_cgroups:
        try:
            layout.v2_controllers = set(Path(layout.unified, "cgroup.controllers").read_text().split())
        except OSError:
            pass
    return layout
