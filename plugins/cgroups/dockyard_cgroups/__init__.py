"""Dockyard cgroup drivers.

* ``v1`` (:class:`~dockyard_cgroups.v1.CgroupV1`): one directory per v1 hierarchy (separate or
  co-mounted controllers), plus the controller-less v2 tree for tracking on hybrid hosts.
* ``v2`` (:class:`~dockyard_cgroups.v2.CgroupV2`): the unified hierarchy.
* ``auto`` (:class:`~dockyard_cgroups.auto.AutoCgroups`): picks one of the two from the host layout.

Layout detection is a pure function, :func:`dockyard_cgroups.detect.detect`.
"""

from .detect import Layout, detect, host_layout

__all__ = ["Layout", "detect", "host_layout"]
