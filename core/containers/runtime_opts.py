"""HostConfig options the runtime applies: devices, the cgroup namespace, OOM score.

:func:`validate` runs at create (a 400 before anything exists, Docker's messages) and fills
Docker's defaults into the stored HostConfig, so inspect shows them.
"""

from __future__ import annotations

from typing import Any

from ..drivers.runtime import DeviceNode
from ..errors import InvalidArgument
from . import cgroupview, devices


def oom_score_adj(hc: dict[str, Any]) -> int:
    value = hc.get("OomScoreAdj") or 0
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidArgument(f"invalid OomScoreAdj: {value!r} is not an integer")
    if not -1000 <= value <= 1000:
        raise InvalidArgument(f"Invalid value {value}, range for oom score adj is [-1000, 1000]")
    return value


def validate(hc: dict[str, Any], cgroup_version: int) -> None:
    """Check and complete ``hc`` in place (CgroupnsMode, OomScoreAdj)."""
    cgroupview.normalize_mode(hc, cgroup_version)
    hc["OomScoreAdj"] = oom_score_adj(hc)
    devices.validate(hc)


def cgroupns(hc: dict[str, Any]) -> str | None:
    """The runtime's namespace setting: None (a new one) for "private", else the host's.
    Containers created before CgroupnsMode was stored have the v1 default, "host"."""
    return None if hc.get("CgroupnsMode") == "private" else "host"


def spec_fields(hc: dict[str, Any], cgroup_procs: list[str], nodes: list[DeviceNode]) -> dict[str, Any]:
    """ContainerSpec fields for these options (``nodes`` from :func:`devices.plan`)."""
    mounts, links = cgroupview.view(cgroup_procs)
    return {"devices": list(nodes), "oom_score_adj": oom_score_adj(hc),
            "cgroup_mounts": mounts, "cgroup_links": links}
