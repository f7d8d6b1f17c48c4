"""An OCI runtime bundle's ``config.json`` (runtime-spec 1.0) from Dockyard's ContainerSpec.

The same spec the native runtime gets, said in OCI terms: the process (args, env, cwd, user,
capabilities, rlimits, noNewPrivileges, oomScoreAdj), the root (the rootfs the storage driver
mounted), mounts (Docker's /proc, /dev, /sys ... then the container's), namespaces (paths for
joined ones), devices, sysctls, masked and read-only paths, seccomp (Docker's profile resolved
for the container's capabilities, in OCI's JSON shape) and ``linux.cgroupsPath``: the cgroup
the daemon's cgroups driver made (its limits stay that driver's; ``resources`` only carries
the device rules, which runc always rewrites).

stdio: the OCI runtime runs in the foreground with the shim's pipes (or pty, for a TTY:
``process.terminal``, relayed by the runtime) as its stdio.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from dockyard.drivers.runtime import ULIMIT_NAMES, ContainerSpec
from dockyard.errors import InvalidArgument
from dockyard.runtime import capabilities

INIT_TARGET = "/sbin/docker-init"
OCI_VERSION = "1.0.2"
NS_TYPES = {"net": "network", "ipc": "ipc", "uts": "uts", "pid": "pid", "cgroup": "cgroup"}
ARCH_NAMES = {"amd64": "SCMP_ARCH_X86_64", "x86": "SCMP_ARCH_X86", "x32": "SCMP_ARCH_X32"}
UNLIMITED = 2**64 - 1
RLIMIT_TYPES = {v: f"RLIMIT_{k.upper()}" for k, v in ULIMIT_NAMES.items()}
CGROUP_ROOT = "/sys/fs/cgroup/"


def own_caps() -> int:
    """The daemon's permitted set: nobody gains what it lacks (as the native shim masks them)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapPrm:"):
                return int(line.split()[1], 16)
    except OSError:
        pass
    return (1 << 64) - 1


def limit_caps(caps: list[str]) -> list[str]:
    have = own_caps()
    return [c for c in caps if c in capabilities.CAPS and have >> capabilities.CAPS[c] & 1]


def container_caps(spec: ContainerSpec) -> list[str]:
    """The container's bounding/effective/permitted set (what the native runtime gives it)."""
    if spec.privileged:
        caps = capabilities.resolve(privileged=True)
    elif spec.capabilities is not None:
        caps = [capabilities.normalize(c) for c in spec.capabilities]
    else:
        caps = list(capabilities.DOCKER_DEFAULT)
    return limit_caps(caps)


def cgroups_path(cgroup_procs: list[str]) -> str:
    """The container's cgroup, relative to the hierarchies' roots (``/dockyard/<id>``), from
    the cgroup.procs files the cgroups driver gave the spec; "" when it has none."""
    for p in cgroup_procs:
        if not p.startswith(CGROUP_ROOT) or not p.endswith("/cgroup.procs"):
            continue
        rel = p[len(CGROUP_ROOT):-len("/cgroup.procs")]
        if "/" in rel and os.path.isdir(CGROUP_ROOT + rel.split("/", 1)[0]) and (
                os.path.ismount(CGROUP_ROOT + rel.split("/", 1)[0])):
            return "/" + rel.split("/", 1)[1]  # v1: /sys/fs/cgroup/<controller>/<path>
        return "/" + rel  # v2: /sys/fs/cgroup/<path>
    return ""


def seccomp_json(spec: ContainerSpec, caps: list[str]) -> dict[str, Any] | None:
    """OCI's ``linux.seccomp``: the profile the native runtime would compile, resolved for
    ``caps`` (Docker's includes/excludes applied), or None (unconfined)."""
    from dockyard.runtime import seccomp  # here: an idle daemon has no use for its tables

    profile = spec.seccomp
    if profile in (False, "unconfined", None, ""):
        return None
    if profile in (True, "default"):
        if spec.privileged:
            return None
        doc = seccomp.default_profile()
    else:
        try:
            doc = seccomp.parse(str(profile))
        except seccomp.ProfileError as e:
            raise InvalidArgument(str(e)) from None
    try:
        res = seccomp.resolve(doc, caps)
    except seccomp.ProfileError as e:
        raise InvalidArgument(str(e)) from None
    if res is None:
        return None
    out: dict[str, Any] = {"defaultAction": res.default_action,
                           "architectures": [ARCH_NAMES[a] for a in res.arches if a in ARCH_NAMES], "syscalls": []}
    if res.default_errno is not None:
        out["defaultErrnoRet"] = res.default_errno
    for r in res.rules:
        call: dict[str, Any] = {"names": [r.name], "action": r.action}
        if r.errno_ret is not None:
            call["errnoRet"] = r.errno_ret
        if r.args:
            call["args"] = [{"index": i, "value": v, "valueTwo": v2, "op": op} for i, op, v, v2 in r.args]
        out["syscalls"].append(call)
    return out


def _mount(dest: str, typ: str, source: str, options: list[str]) -> dict[str, Any]:
    return {"destination": dest, "type": typ, "source": source, "options": options}


def _mounts(spec: ContainerSpec, init_path: str) -> list[dict[str, Any]]:
    ns = spec.namespaces
    ro_sys = [] if spec.privileged else ["ro"]
    out = [
        _mount("/proc", "proc", "proc", ["nosuid", "noexec", "nodev"]),
        _mount("/dev", "tmpfs", "tmpfs", ["nosuid", "strictatime", "mode=755", "size=65536k"]),
        _mount("/dev/pts", "devpts", "devpts",
               ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]),
        _mount("/sys", "sysfs", "sysfs", ["nosuid", "noexec", "nodev", *ro_sys]),
        _mount("/sys/fs/cgroup", "cgroup", "cgroup", [*ro_sys, "nosuid", "noexec", "nodev"]),
    ]
    if ns.get("ipc") is None:
        out.append(_mount("/dev/mqueue", "mqueue", "mqueue", ["nosuid", "noexec", "nodev"]))
    if spec.shm_size is not None and not any(m.target == "/dev/shm" for m in spec.mounts):
        out.append(_mount("/dev/shm", "tmpfs", "shm",
                          ["nosuid", "noexec", "nodev", "mode=1777", f"size={spec.shm_size}"]))
    if spec.init:
        out.append(_mount(INIT_TARGET, "bind", init_path, ["bind", "ro"]))
    for m in sorted(spec.mounts, key=lambda m: m.target.rstrip("/").count("/")):
        if not m.target.startswith("/"):
            raise InvalidArgument(f"invalid mount config: mount path must be absolute: {m.target}")
        if m.type == "bind":
            if not Path(m.source).exists():
                raise InvalidArgument('invalid mount config for type "bind": '
                                      f'bind source path does not exist: {m.source}')
            # "ro" is recursive (Docker's default, mount_setattr AT_RECURSIVE): runc's "rro" (1.1+)
            # beside "ro" for the top mount; "ro-top" (ReadOnlyNonRecursive) is runc's plain "ro"
            opts = ["ro" if o == "ro-top" else o for o in m.options]
            if "ro" in m.options:
                opts.append("rro")
            if "rbind" not in opts and "bind" not in opts:
                opts.insert(0, "rbind")
            out.append(_mount(m.target, "bind", m.source, opts))
        else:
            out.append(_mount(m.target, m.type, m.source or m.type, list(m.options)))
    return out


def cgroup_device_rules(cgroup_procs: list[str]) -> list[dict[str, Any]] | None:
    """The devices cgroup the cgroups driver set up (v1 ``devices.list``: the user's --device
    permissions and --device-cgroup-rule included) as OCI rules, so that runc, which always
    rewrites the devices cgroup, writes the same allow-list; None without a v1 devices cgroup."""
    for p in cgroup_procs:
        if p.startswith(CGROUP_ROOT + "devices/"):
            try:
                lines = (Path(p).parent / "devices.list").read_text().split("\n")
            except OSError:
                return None
            rules: list[dict[str, Any]] = [{"allow": False, "access": "rwm"}]
            for line in lines:
                parts = line.split()
                if len(parts) != 3:
                    continue
                kind, (major, minor), access = parts[0], parts[1].split(":"), parts[2]
                rule: dict[str, Any] = {"allow": True, "access": access}
                if kind != "a":
                    rule["type"] = kind
                    if major != "*":
                        rule["major"] = int(major)
                    if minor != "*":
                        rule["minor"] = int(minor)
                rules.append(rule)
            return rules
    return None


def _device_rules(spec: ContainerSpec) -> list[dict[str, Any]]:
    if spec.privileged:
        return [{"allow": True, "access": "rwm"}]
    found = cgroup_device_rules(spec.cgroup_procs)
    if found is not None:
        return found
    rules: list[dict[str, Any]] = [{"allow": False, "access": "rwm"}]
    rules += [{"allow": True, "type": d.type, "major": d.major, "minor": d.minor, "access": "rwm"}
              for d in spec.devices]
    return rules


def config(spec: ContainerSpec, *, init_path: str) -> dict[str, Any]:
    """The bundle's config.json for ``spec``. Raises InvalidArgument for impossible settings."""
    if not spec.args:
        raise InvalidArgument("no command specified")
    for e in spec.env:
        if "=" not in e:
            raise InvalidArgument(f"invalid environment variable: {e}")
    caps = container_caps(spec)
    args = [INIT_TARGET, "--", *spec.args] if spec.init else list(spec.args)
    rlimits = []
    from dockyard.drivers.runtime import validate_ulimits
    for res, soft, hard in validate_ulimits(spec.ulimits):
        rlimits.append({"type": RLIMIT_TYPES.get(res, f"RLIMIT_{res}"),
                        "soft": UNLIMITED if soft < 0 else soft, "hard": UNLIMITED if hard < 0 else hard})
    process: dict[str, Any] = {
        # a TTY: runc run in the foreground makes the container's pty and relays it to its own
        # stdio, the shim's pty (SIGWINCH from the shim's resize reaches runc, which resizes)
        "terminal": bool(spec.tty),
        # the first size before the process runs (runc's relay of the shim's size comes later:
        # an early `stty size` would see 0 0)
        **console_size(spec.tty, spec.console_size),
        "user": {"uid": spec.uid, "gid": spec.gid, **({"additionalGids": list(spec.additional_gids)}
                                                       if spec.additional_gids else {})},
        "args": args,
        "env": list(spec.env),
        "cwd": spec.cwd or "/",
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
        "rlimits": rlimits,
        "noNewPrivileges": bool(spec.no_new_privileges),
    }
    if spec.oom_score_adj is not None:
        process["oomScoreAdj"] = int(spec.oom_score_adj)
    namespaces: list[dict[str, Any]] = [{"type": "mount"}]
    for kind, val in spec.namespaces.items():
        if kind not in NS_TYPES:
            raise InvalidArgument(f"unsupported namespace kind {kind!r}")
        if val is None:
            namespaces.append({"type": NS_TYPES[kind]})
        elif val != "host":
            namespaces.append({"type": NS_TYPES[kind], "path": val})
    linux: dict[str, Any] = {
        "namespaces": namespaces,
        "devices": [{"path": d.path, "type": d.type, "major": d.major, "minor": d.minor, "fileMode": d.mode,
                     "uid": d.uid, "gid": d.gid} for d in spec.devices],
        "resources": {"devices": _device_rules(spec)},
        "sysctl": dict(spec.sysctls),
        "maskedPaths": [] if spec.privileged else list(spec.masked_paths),
        # runc 1.1 leaves the tmpfs it makes at /sys/fs/cgroup (v1) writable: made read-only here
        "readonlyPaths": [] if spec.privileged else [*spec.readonly_paths, "/sys/fs/cgroup"],
    }
    if spec.uid_map:
        namespaces.append({"type": "user"})
        linux["uidMappings"] = [{"containerID": a, "hostID": b, "size": n} for a, b, n in spec.uid_map]
        linux["gidMappings"] = [{"containerID": a, "hostID": b, "size": n} for a, b, n in spec.gid_map]
    cg = cgroups_path(spec.cgroup_procs)
    if cg:
        linux["cgroupsPath"] = cg
    sec = seccomp_json(spec, caps)
    if sec is not None:
        linux["seccomp"] = sec
    doc: dict[str, Any] = {
        "ociVersion": OCI_VERSION,
        "process": process,
        "root": {"path": str(Path(spec.rootfs).resolve()), "readonly": bool(spec.readonly_rootfs)},
        "mounts": _mounts(spec, init_path),
        "linux": linux,
    }
    if spec.namespaces.get("uts") is None:
        if spec.hostname:
            doc["hostname"] = spec.hostname
        if spec.domainname:  # runc < 1.2 has no "domainname": the sysctl, as moby set it
            linux["sysctl"]["kernel.domainname"] = spec.domainname
    return doc


def console_size(tty: bool, size: tuple[int, int] | None) -> dict[str, Any]:
    """OCI ``process.consoleSize`` for a TTY with a known (height, width); empty otherwise."""
    if not tty or not size or not all(size):
        return {}
    return {"consoleSize": {"height": int(size[0]), "width": int(size[1])}}
