"""The ``Config``/``HostConfig`` fields this engine refuses, in one place.

Every field of Docker's container create request (API 1.44) is either implemented, refused
here with a Docker-style 400 naming the option, or ignored because Docker ignores it too on
Linux (see ``docs/compatibility.md`` for the whole table). :func:`check` runs at create,
before anything exists, so a refused option leaves no container behind.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from ..errors import InvalidArgument

if TYPE_CHECKING:
    from .runtimes import RuntimeSet

MAC_RE = re.compile(r"^[0-9a-fA-F]{2}([:-])[0-9a-fA-F]{2}(\1[0-9a-fA-F]{2}){4}$")
#: Runtime names known from Docker that need a separately installed runtime plugin here.
RUNTIME_PLUGINS = {"runc": "dockyard-oci-runtime", "crun": "dockyard-oci-runtime"}
#: Sysctls of the IPC namespace (with fs.mqueue.*): allowed unless --ipc host, as Docker.
IPC_SYSCTLS = {"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
               "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"}

# HostConfig resource fields no cgroups driver here applies: (field, docker option).
UNSUPPORTED_RESOURCES = (
    ("BlkioWeightDevice", "--blkio-weight-device"),
    ("BlkioDeviceReadBps", "--device-read-bps"),
    ("BlkioDeviceWriteBps", "--device-write-bps"),
    ("BlkioDeviceReadIOps", "--device-read-iops"),
    ("BlkioDeviceWriteIOps", "--device-write-iops"),
    ("CpuRealtimePeriod", "--cpu-rt-period"),
    ("CpuRealtimeRuntime", "--cpu-rt-runtime"),
    ("KernelMemoryTCP", "--kernel-memory-tcp"),
)


def _refuse(option: str, why: str = "is not supported by this engine") -> InvalidArgument:
    return InvalidArgument(f"{option} {why}")


def normalize_mac(value: Any, what: str = "--mac-address") -> str:
    """``aa:bb:cc:dd:ee:ff`` (lower case) or Docker's 400 for anything else; a multicast
    address could not be an interface's own."""
    if not isinstance(value, str) or not MAC_RE.match(value):
        raise InvalidArgument(f"invalid MAC address: {value}")
    mac = value.replace("-", ":").lower()
    if int(mac[:2], 16) & 1:
        raise InvalidArgument(f"invalid {what}: {value} is a multicast address")
    return mac


def runtime_names(runtime: RuntimeSet | None) -> set[str]:
    """Runtime names ``HostConfig.Runtime`` may name: those the loaded runtimes really run
    (e.g. native plus the OCI binaries of the oci driver); "native" without a runtime set."""
    return set(runtime.names()) if runtime is not None else {"native"}


def _check_runtime(hc: dict[str, Any], runtime: RuntimeSet | None) -> None:
    name = hc.get("Runtime") or ""
    if not name:  # dockerd stores its default runtime's name
        hc["Runtime"] = runtime.name if runtime is not None else "native"
        return
    if name in runtime_names(runtime):
        return
    if name in RUNTIME_PLUGINS:
        raise InvalidArgument(f"runtime {name} is not available (install {RUNTIME_PLUGINS[name]})")
    raise InvalidArgument(f"unknown or invalid runtime name: {name}")


def _check_device_requests(hc: dict[str, Any]) -> None:
    """``--gpus``: no device driver (nvidia) exists here, so any request fails as on Docker
    without one."""
    for req in hc.get("DeviceRequests") or []:
        caps = (req or {}).get("Capabilities") or []
        text = "[" + " ".join("[" + " ".join(c) + "]" for c in caps) + "]"
        raise InvalidArgument(f'could not select device driver "{(req or {}).get("Driver") or ""}" '
                              f"with capabilities: {text}")


def _check_storage_opt(hc: dict[str, Any], storage: Any) -> None:
    opts = hc.get("StorageOpt") or {}
    if not opts:
        return
    if not isinstance(opts, dict):
        raise InvalidArgument("StorageOpt must be an object")
    if storage is not None:
        from ..drivers import contracts

        if contracts.record("storage", storage).has("storage-opts"):
            storage.validate_storage_opts(dict(opts))  # the driver's own wording
            return
    name = storage.name if storage is not None else ""
    for key in opts:
        if key == "size":
            raise InvalidArgument(f"--storage-opt size is not supported by the {name} storage driver")
        raise InvalidArgument(f"Unknown option {key}")


def log_driver(hc: dict[str, Any]) -> str:
    """The container's ``--log-driver`` (its driver: ``ContainerLogging.driver``, from the registry)."""
    return (hc.get("LogConfig") or {}).get("Type") or "json-file"


def _check_modes(hc: dict[str, Any]) -> None:
    ipc = hc.get("IpcMode") or ""
    if ipc not in ("", "none", "private", "shareable", "host") and not ipc.startswith("container:"):
        raise InvalidArgument(f"invalid IPC mode: {ipc}")
    pid = hc.get("PidMode") or ""
    if pid not in ("", "host") and not pid.startswith("container:"):
        raise InvalidArgument(f"invalid PID mode: {pid}")
    uts = hc.get("UTSMode") or ""
    if uts not in ("", "host"):
        raise InvalidArgument(f"invalid UTS mode: {uts}")
    userns = hc.get("UsernsMode") or ""
    if userns not in ("", "host"):
        raise InvalidArgument(f"invalid USER mode: {userns}")  # Docker knows only "host" too
    if hc.get("Cgroup"):
        raise _refuse("HostConfig.Cgroup (--cgroup container:...)")
    parent = hc.get("CgroupParent")
    if parent is not None and (not isinstance(parent, str) or "\0" in parent or "\n" in parent):
        raise InvalidArgument(f"invalid cgroup parent: {parent!r}")
    isolation = hc.get("Isolation") or ""
    if isolation not in ("", "default"):
        raise InvalidArgument(f"Invalid isolation: {isolation!r} - linux only supports 'default'")


def check_resources(hc: dict[str, Any]) -> None:
    """Resource fields no cgroups driver here applies: Docker-style 400s (create and update)."""
    for key, option in UNSUPPORTED_RESOURCES:
        if hc.get(key):
            raise _refuse(option)
    swappiness = hc.get("MemorySwappiness")
    if swappiness is not None and swappiness != -1:
        if not isinstance(swappiness, int) or not 0 <= swappiness <= 100:
            raise InvalidArgument(f"Invalid value: {swappiness}, valid memory swappiness range is 0-100")
    if hc.get("OomKillDisable"):
        raise _refuse("--oom-kill-disable")


def _check_sysctls(hc: dict[str, Any]) -> None:
    sysctls = hc.get("Sysctls") or {}
    if not isinstance(sysctls, dict):
        raise InvalidArgument("Sysctls must be an object")
    host_net = hc.get("NetworkMode") == "host" or str(hc.get("NetworkMode") or "").startswith("container:")
    for key, value in sysctls.items():
        if not isinstance(value, str):
            raise InvalidArgument(f"invalid sysctl value for {key}: {value!r}")
        if "/" in key or ".." in key or not key:
            raise InvalidArgument(f"invalid sysctl name: {key}")
        if key.startswith("net."):
            if host_net:
                raise InvalidArgument(f"sysctl {key!r} not allowed in host network namespace")
            continue
        if key in IPC_SYSCTLS or key.startswith("fs.mqueue."):
            if hc.get("IpcMode") == "host":
                raise InvalidArgument(f"sysctl {key!r} is not allowed in the hosts ipc namespace")
            continue  # written by the runtime in the container's IPC namespace
        raise InvalidArgument(f"sysctl {key!r} is not in a separate kernel namespace")


def _check_security(hc: dict[str, Any]) -> None:
    from .spec import _security_opts

    _security_opts(hc)  # unknown --security-opt, custom seccomp profiles: 400 at create, not at start
    for what in ("MaskedPaths", "ReadonlyPaths"):
        paths = hc.get(what)
        if paths is not None and (not isinstance(paths, list) or not all(
                isinstance(p, str) and p.startswith("/") for p in paths)):
            raise InvalidArgument(f"{what} must be a list of absolute paths")


def _check_mounts(hc: dict[str, Any]) -> None:
    """Read-only binds are recursively read-only here (Docker's default on API 1.44 where the
    kernel has mount_setattr), so ``ReadOnlyForceRecursive`` is what happens anyway (the shim
    fails the start when mount_setattr(AT_RECURSIVE) fails); ``ReadOnlyNonRecursive`` makes
    only the top mount read-only (submounts stay writable), as Docker 25."""
    for m in hc.get("Mounts") or []:
        if not isinstance(m, dict):
            continue  # mounts.plan refuses it
        opts = m.get("BindOptions") or {}
        if opts.get("ReadOnlyNonRecursive"):
            if not m.get("ReadOnly"):
                raise InvalidArgument("option ReadOnlyNonRecursive requires ReadOnly")
            if opts.get("ReadOnlyForceRecursive"):
                raise InvalidArgument("option ReadOnlyForceRecursive conflicts with ReadOnlyNonRecursive")
        if opts.get("ReadOnlyForceRecursive") and not m.get("ReadOnly"):
            raise InvalidArgument("option ReadOnlyForceRecursive requires ReadOnly")
        if opts.get("ReadOnlyForceRecursive") and (opts.get("Propagation") or "rprivate") != "rprivate":
            raise InvalidArgument("option ReadOnlyForceRecursive requires BindOptions.Propagation to be 'rprivate'")
        if (m.get("VolumeOptions") or {}).get("Subpath"):
            raise _refuse("--mount volume-subpath (VolumeOptions.Subpath)")
        if (m.get("TmpfsOptions") or {}).get("Options"):
            raise _refuse("--mount tmpfs-option (TmpfsOptions.Options)")


def check_platform(image_config: dict[str, Any], platform: str) -> None:
    """``POST /containers/create?platform=os/arch[/variant]``: the local image must match.
    Docker answers 404 (and the docker CLI then pulls); a 400 here, as nothing can be pulled
    for another architecture that this engine could run."""
    want = [p.lower() for p in platform.split("/")]
    have = [str(image_config.get(k) or "").lower() for k in ("os", "architecture", "variant")]
    aliases = {"x86_64": "amd64", "aarch64": "arm64"}
    want = [aliases.get(p, p) for p in want]
    if not want[0] or want[0] != (have[0] or "linux") or (len(want) > 1 and want[1] != have[1]) or (
            len(want) > 2 and have[2] and want[2] != have[2]):
        actual = "/".join(p for p in have if p)
        raise InvalidArgument(f"image's platform ({actual}) does not match the specified platform ({platform})")


def check(config: dict[str, Any], hc: dict[str, Any], *, runtime: Any = None, storage: Any = None,
          networking: dict[str, Any] | None = None) -> None:
    """Raise a 400 for the first field of the request this engine cannot honour."""
    _check_mounts(hc)
    if hc.get("IOMaximumBandwidth") or hc.get("IOMaximumIOps"):
        raise InvalidArgument("Invalid QoS settings: linux does not support Maximum IO Bandwidth or Maximum IO IOps")
    if hc.get("Capabilities"):
        raise _refuse("HostConfig.Capabilities", "is not supported: use CapAdd and CapDrop")
    _check_runtime(hc, runtime)
    _check_device_requests(hc)
    _check_storage_opt(hc, storage)
    _check_modes(hc)
    check_resources(hc)
    _check_sysctls(hc)
    _check_security(hc)
    if config.get("NetworkDisabled"):
        raise _refuse("NetworkDisabled", "is not supported by this engine: use NetworkMode none (--network none)")
    if config.get("MacAddress"):
        normalize_mac(config["MacAddress"])
    if str(hc.get("NetworkMode") or "").startswith("container:") and config.get("Hostname"):
        raise InvalidArgument("conflicting options: hostname and the network mode")  # it takes the other's
    if hc.get("UTSMode") == "host":  # the host's UTS namespace: its names cannot be the container's
        for key, option in (("Hostname", "--hostname"), ("Domainname", "--domainname")):
            if config.get(key):
                raise InvalidArgument(f"conflicting options: {option} and the UTS namespace mode (--uts host)")


def settle_mac(config: dict[str, Any], hc: dict[str, Any], networks: dict[str, Any]) -> None:
    """``--mac-address``: API >= 1.44 clients send it per endpoint, older ones in
    ``Config.MacAddress``; both name the first network's MAC. Kept in ``Config.MacAddress``
    (the networks service uses it at every start) and in that endpoint's settings. Other
    networks' endpoint MACs stay in their settings (kept across stops, networks/service.py)."""
    primary = next(iter(networks), None)
    wanted = config.get("MacAddress") or ""
    for i, (_name, settings) in enumerate(networks.items()):
        mac = settings.get("MacAddress") or ""
        if not mac:
            continue
        if i:  # another network's own MAC (API >= 1.44 EndpointsConfig): that interface's
            settings["MacAddress"] = normalize_mac(mac)
            continue
        if wanted and normalize_mac(wanted) != normalize_mac(mac):
            raise InvalidArgument("the container-wide MAC address must match the endpoint-specific MAC address "
                                  "for the main network, or be left empty")
        wanted = mac
    if not wanted:
        return
    mode = hc.get("NetworkMode") or "default"
    if primary is None or mode in ("host", "none") or mode.startswith("container:"):
        raise InvalidArgument("conflicting options: mac-address and the network mode")
    config["MacAddress"] = networks[primary]["MacAddress"] = normalize_mac(wanted)


#: dockerd's warning where the kernel has no memory.swappiness (cgroup v2)
SWAPPINESS_WARNING = ("Your kernel does not support memory swappiness capabilities or the cgroup is not "
                      "mounted. Memory swappiness discarded.")


def settle_swappiness(hc: dict[str, Any], cgroups: Any) -> list[str]:
    """``MemorySwappiness`` (0-100) is applied where the memory controller is on cgroup v1;
    elsewhere (v2 has no memory.swappiness) Docker drops it with a warning, as here: the
    create answers the warning and inspect shows null. -1 is the docker CLI's "unset"."""
    value = hc.get("MemorySwappiness")
    if value is None or value == -1:
        return []
    if cgroups is not None and cgroups.version == 1:
        return []
    hc["MemorySwappiness"] = None
    return [SWAPPINESS_WARNING]
