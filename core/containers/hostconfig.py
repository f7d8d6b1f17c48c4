"""Docker's defaults for the HostConfig fields a create request left out, applied when a
container is rendered (``docker inspect``), never stored: dockerd always answers the whole
HostConfig (its Go struct's zero values: ``"CpuShares": 0``, ``"PidsLimit": null``,
``"Ulimits": null``...), clients and tools read fields without checking they exist.

One table, in dockerd's field order (api/types/container.HostConfig and Resources), with every
key of the v1.44 spec's HostConfig except those dockerd's struct marks ``omitempty`` (left out
when unset, as dockerd does: :data:`OMITEMPTY`).
"""

from __future__ import annotations

import json
from typing import Any

# (key, default) in dockerd's order; the values are JSON (copied on use: never shared)
_DEFAULTS: tuple[tuple[str, Any], ...] = (
    ("Binds", None), ("ContainerIDFile", ""), ("LogConfig", {"Type": "json-file", "Config": {}}),
    ("NetworkMode", "default"), ("PortBindings", None), ("RestartPolicy", {"Name": "", "MaximumRetryCount": 0}),
    ("AutoRemove", False), ("VolumeDriver", ""), ("VolumesFrom", None), ("ConsoleSize", [0, 0]),
    ("CapAdd", None), ("CapDrop", None), ("CgroupnsMode", ""), ("Dns", None),
    ("DnsOptions", None), ("DnsSearch", None), ("ExtraHosts", None), ("GroupAdd", None), ("IpcMode", ""),
    ("Cgroup", ""), ("Links", None), ("OomScoreAdj", 0), ("PidMode", ""), ("Privileged", False),
    ("PublishAllPorts", False), ("ReadonlyRootfs", False), ("SecurityOpt", None),
    ("UTSMode", ""), ("UsernsMode", ""), ("ShmSize", 0), ("Isolation", ""),
    # Resources
    ("CpuShares", 0), ("Memory", 0), ("NanoCpus", 0), ("CgroupParent", ""), ("BlkioWeight", 0),
    ("BlkioWeightDevice", None), ("BlkioDeviceReadBps", None), ("BlkioDeviceWriteBps", None),
    ("BlkioDeviceReadIOps", None), ("BlkioDeviceWriteIOps", None), ("CpuPeriod", 0), ("CpuQuota", 0),
    ("CpuRealtimePeriod", 0), ("CpuRealtimeRuntime", 0), ("CpusetCpus", ""), ("CpusetMems", ""),
    ("Devices", None), ("DeviceCgroupRules", None), ("DeviceRequests", None), ("KernelMemoryTCP", 0),
    ("MemoryReservation", 0), ("MemorySwap", 0), ("MemorySwappiness", None), ("OomKillDisable", False),
    ("PidsLimit", None), ("Ulimits", None), ("CpuCount", 0), ("CpuPercent", 0), ("IOMaximumIOps", 0),
    ("IOMaximumBandwidth", 0),
    # after Resources
    ("MaskedPaths", None), ("ReadonlyPaths", None),
)
#: HostConfig fields dockerd leaves out when unset (Go ``json:",omitempty"``)
OMITEMPTY = ("Annotations", "Init", "Mounts", "Runtime", "StorageOpt", "Sysctls", "Tmpfs")
_TEXT = json.dumps(dict(_DEFAULTS))
KEYS = tuple(k for k, _ in _DEFAULTS)


def render(host_config: dict[str, Any]) -> dict[str, Any]:
    """``host_config`` completed with dockerd's default for every field it lacks (a new dict;
    stored keys keep their values, unknown stored keys are kept after the known ones)."""
    if all(k in host_config for k in KEYS):
        return host_config
    defaults = json.loads(_TEXT)
    out = {k: host_config[k] if k in host_config else defaults[k] for k in KEYS}
    for k, v in host_config.items():
        if k not in out:
            out[k] = v
    return out
