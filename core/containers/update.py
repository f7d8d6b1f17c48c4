"""``docker update``: the resource limits (and restart policy) of an existing container."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..drivers.cgroups import Resources
from ..lifecycle import require
from . import configure, options

if TYPE_CHECKING:
    from .service import ContainerService

#: ``POST /containers/{id}/update``: the resource fields moby's UpdateContainer applies
#: (besides RestartPolicy).
UPDATE_FIELDS = frozenset({
    "CpuShares", "Memory", "NanoCpus", "BlkioWeight", "CpuPeriod", "CpuQuota", "CpuRealtimePeriod",
    "CpuRealtimeRuntime", "CpusetCpus", "CpusetMems", "MemoryReservation", "MemorySwap", "KernelMemory",
    "KernelMemoryTCP", "PidsLimit",
})


async def update(svc: ContainerService, ref: str, body: dict[str, Any]) -> list[str]:
    c = svc.get(ref)
    async with svc.lock(c.id):
        require(c.state, "update", c.id)
        # only what moby's update changes: other HostConfig fields in the body are ignored,
        # never stored (Privileged, CapAdd, Mounts... are fixed at create)
        merged = {**c.host_config, **{k: v for k, v in body.items() if k in UPDATE_FIELDS}}
        options.check_resources(merged)
        resources = Resources.from_host_config(merged, update=True)
        if "RestartPolicy" in body:
            merged["RestartPolicy"] = configure.normalize_host_config(
                {"RestartPolicy": body["RestartPolicy"], "AutoRemove": c.host_config.get("AutoRemove")}
            )["RestartPolicy"]
        if c.running and svc.cgroups is not None:
            svc.cgroups.update(c.id, resources)
        c.host_config = merged
        svc.save(c, durable=True)
    svc.emit("update", c)
    return []
