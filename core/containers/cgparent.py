"""Docker's ``--cgroup-parent`` and ``native.cgroupdriver``, on the daemon side.

A container's cgroup is ``<parent>/<id>`` in every hierarchy (cgroupfs driver semantics,
e.g. kubelet's ``/kubepods/burstable/pod<uid>/<id>``), the parent being
``HostConfig.CgroupParent``, else the daemon's ``cgroup-parent``, else the cgroups
driver's own parent (``dockyard``). The parent a container started under is kept in its
record (``cgroup_parent``) and handed back to the driver (``adopt``) when a restarted
daemon restores its containers. The systemd driver (slices and scopes through systemd's
D-Bus API) is not implemented: ``native.cgroupdriver=systemd`` is refused at daemon start.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from ..errors import ConfigError

CGROUPFS, SYSTEMD = "cgroupfs", "systemd"


def systemd_running() -> bool:
    """sd_booted(): systemd is PID 1 (its runtime directory exists and PID 1 is systemd)."""
    try:
        with open("/proc/1/comm") as f:
            comm = f.read().strip()
    except OSError:
        comm = ""
    return comm == "systemd" and os.path.isdir("/run/systemd/system")


def cgroup_driver(exec_opts: Iterable[str]) -> str:
    """The cgroup driver the daemon's ``exec-opts`` ask for; only ``cgroupfs`` runs here.

    Raises :class:`ConfigError` (the daemon does not start) for ``systemd`` and for options
    dockerd does not know, with dockerd's wording where it has one."""
    driver = CGROUPFS
    for opt in exec_opts:
        key, sep, value = opt.partition("=")
        key, value = key.strip().lower(), value.strip()
        if not sep or not key or not value:
            raise ConfigError(f"exec-opt: unable to parse {opt!r}: expected KEY=VALUE")
        if key != "native.cgroupdriver":
            raise ConfigError(f"exec-opt: {key} is not supported (known: native.cgroupdriver)")
        driver = value
    if driver == CGROUPFS:
        return driver
    if driver == SYSTEMD:
        if not systemd_running():
            raise ConfigError("native.cgroupdriver=systemd needs systemd running as PID 1, and this host's "
                              "PID 1 is not systemd: use native.cgroupdriver=cgroupfs (the default)")
        raise ConfigError("native.cgroupdriver=systemd (slices and scopes through systemd's D-Bus API) is not "
                          "implemented by dockyardd: use native.cgroupdriver=cgroupfs "
                          "(kubelet: --cgroup-driver=cgroupfs)")
    if driver == "none":
        raise ConfigError(f"native.cgroupdriver option {driver} is internally used and cannot be specified manually")
    raise ConfigError(f"native.cgroupdriver option {driver} not supported")


def effective(config: Any, hc: dict[str, Any]) -> str | None:
    """The parent a container's cgroup goes under: its own, the daemon default, or None
    (the cgroups driver's parent)."""
    return hc.get("CgroupParent") or getattr(config, "cgroup_parent", None) or None


def adopt_all(cgroups: Any, containers: Iterable[Any]) -> None:
    """Tell the driver the parent of every restored container that started under one
    (``adopt`` is part of every cgroup driver's contract)."""
    if cgroups is None:
        return
    for c in containers:
        parent = getattr(c, "cgroup_parent", None)
        if parent is not None:
            cgroups.adopt(c.id, parent)
