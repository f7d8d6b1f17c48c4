"""Turn a container record into the runtime's :class:`ContainerSpec` at start time.

Everything that reads the container's own filesystem (``/etc/passwd`` for ``-u name``)
resolves paths inside the rootfs without following symlinks out of it.
"""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

from .. import container_defaults
from ..drivers.runtime import ContainerSpec, DeviceNode, Mount
from ..errors import InvalidArgument
from ..runtime import capabilities
from . import environ, runtime_opts
from .inroot import read_in_root


def _read_db(root: Path, name: str) -> list[list[str]]:
    try:  # through fds, never blocking: the container may swap in a FIFO or a symlink
        text = read_in_root(root, f"/etc/{name}").decode(errors="replace")
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EINVAL, errno.ELOOP):
            return []
        raise
    return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]


def resolve_user(root: Path, user: str, group_add: list[str] | None = None,
                 passwd: list[list[str]] | None = None) -> tuple[int, int, list[int]]:
    """Docker's ``-u`` rules: ``uid``, ``name``, ``uid:gid``, ``name:group``; the image's
    /etc/passwd gives the primary group and /etc/group the supplementary ones (``passwd``:
    that file already read)."""
    passwd = _read_db(root, "passwd") if passwd is None else passwd
    groups = _read_db(root, "group")
    name, _, group = (user or "0").partition(":")
    uid: int | None = None
    gid: int | None = None
    username = None
    for entry in passwd:
        if len(entry) >= 4 and (entry[0] == name or (name.isdigit() and entry[2] == name)):
            username, uid, gid = entry[0], int(entry[2]), int(entry[3])
            break
    if uid is None:
        if not name.isdigit():
            raise InvalidArgument(f"unable to find user {name}: no matching entries in passwd file")
        uid, gid = int(name), 0
    if group:
        gid = None
        for entry in groups:
            if len(entry) >= 3 and (entry[0] == group or (group.isdigit() and entry[2] == group)):
                gid = int(entry[2])
                break
        if gid is None:
            if not group.isdigit():
                raise InvalidArgument(f"unable to find group {group}: no matching entries in group file")
            gid = int(group)
    extra: list[int] = []
    if username is not None:
        extra = [int(e[2]) for e in groups if len(e) >= 4 and username in e[3].split(",") and int(e[2]) != gid]
    for g in group_add or []:
        found = [int(e[2]) for e in groups if len(e) >= 3 and e[0] == g]
        if found:
            extra.extend(found)
        elif g.isdigit():
            extra.append(int(g))
        else:
            raise InvalidArgument(f"unable to find group {g}: no matching entries in group file")
    return uid, gid if gid is not None else 0, sorted(set(extra))  # gid is set on every path above


def _ulimits(hc: dict[str, Any]) -> list[tuple[str, int, int]]:
    own = [(u["Name"], int(u.get("Soft", -1)), int(u.get("Hard", -1))) for u in hc.get("Ulimits") or []]
    return container_defaults.ulimits(own)  # plus the daemon's default-ulimits it did not set


def _console_size(value: Any) -> tuple[int, int] | None:
    """HostConfig.ConsoleSize ``[height, width]``: the pty's size from the start (0 = unset)."""
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) and v > 0 for v in value):
        return value[0], value[1]
    return None


def _security_opts(hc: dict[str, Any]) -> tuple[bool, bool | str]:
    nnp = False
    seccomp: bool | str = "default"
    for opt in hc.get("SecurityOpt") or []:
        key, sep, value = opt.partition("=") if "=" in opt else opt.partition(":")
        if key == "no-new-privileges":
            nnp = value in ("", "true")
        elif key == "seccomp":
            # the docker CLI sends the profile file's content; "builtin" is Docker's default
            if value == "unconfined":
                seccomp = False
            elif value in ("builtin", "default"):
                seccomp = "default"
            else:
                from ..runtime import seccomp as seccomp_profiles  # here: not at idle

                try:
                    seccomp_profiles.check(value)
                except seccomp_profiles.ProfileError as e:
                    raise InvalidArgument(f"invalid seccomp profile: {e}") from None
                seccomp = value
        elif key in ("apparmor", "label"):
            continue  # not available on this engine; Docker ignores them where unsupported too
        else:
            raise InvalidArgument(f"invalid --security-opt: {opt}")
    return nnp, seccomp


def build_spec(
    *,
    cid: str,
    config: dict[str, Any],
    host_config: dict[str, Any],
    rootfs: Path,
    files: dict[str, Path],
    mounts: list[Mount],
    cgroup_procs: list[str],
    log_path: Path,
    log_max_size: int,
    log_max_files: int,
    namespaces: dict[str, str | None],
    default_init: bool = False,
    devices: list[DeviceNode] | None = None,
    json_log: tuple[Path, int, int, bool] | None = None,
    syslog: dict[str, str | int] | None = None,
) -> ContainerSpec:
    hc = host_config
    passwd = environ.read_passwd(rootfs)  # once: the user's ids and its home
    uid, gid, groups = resolve_user(rootfs, config.get("User") or "", hc.get("GroupAdd"), passwd)
    caps = capabilities.resolve(hc.get("CapAdd"), hc.get("CapDrop"), privileged=hc.get("Privileged", False))
    nnp, seccomp = _security_opts(hc)
    etc_mounts = [Mount(str(path), f"/etc/{name}", "bind", ["rbind", "rprivate"]) for name, path in files.items()]
    cmd = [*(config.get("Entrypoint") or []), *(config.get("Cmd") or [])]
    hostname = config.get("Hostname") or cid[:12]
    init = hc.get("Init")
    # --security-opt systempaths=unconfined: the CLI sends empty MaskedPaths and ReadonlyPaths
    paths: dict[str, Any] = {k: list(hc[f]) for k, f in (("masked_paths", "MaskedPaths"),
                                                          ("readonly_paths", "ReadonlyPaths"))
                             if hc.get(f) is not None}
    json_log_fields: dict[str, Any] = {} if not json_log else {
        "json_log_path": json_log[0], "json_log_max_size": json_log[1], "json_log_max_files": json_log[2],
        "json_log_compress": json_log[3]}
    return ContainerSpec(
        **paths,
        **runtime_opts.spec_fields(hc, cgroup_procs, devices or []),  # devices, cgroup view, oom score
        id=cid,
        rootfs=rootfs,
        args=cmd,
        env=environ.with_home(environ.daemon_environment(hostname, bool(config.get("Tty")),
                                                         list(config.get("Env") or [])),
                              passwd, config.get("User") or ""),
        cwd=config.get("WorkingDir") or "/",
        uid=uid,
        gid=gid,
        additional_gids=groups,
        hostname=hostname,
        domainname=config.get("Domainname") or "",
        tty=bool(config.get("Tty")),
        console_size=_console_size(hc.get("ConsoleSize")),
        open_stdin=bool(config.get("OpenStdin")),
        stdin_once=bool(config.get("StdinOnce")),
        mounts=[*etc_mounts, *mounts],
        readonly_rootfs=bool(hc.get("ReadonlyRootfs")),
        capabilities=caps,
        privileged=bool(hc.get("Privileged")),
        no_new_privileges=nnp,
        seccomp=False if hc.get("Privileged") and seccomp == "default" else seccomp,  # custom: applied (Docker)
        ulimits=_ulimits(hc),
        init=default_init if init is None else bool(init),
        namespaces={**namespaces, "cgroup": runtime_opts.cgroupns(hc)},
        cgroup_procs=cgroup_procs,
        shm_size=None if hc.get("IpcMode") == "none" else int(hc.get("ShmSize") or 64 * 1024 * 1024),
        sysctls={k: v for k, v in (hc.get("Sysctls") or {}).items() if not k.startswith("net.")},  # net.*: startopts
        log_path=log_path,
        log_max_size=log_max_size,
        log_max_files=log_max_files,
        **json_log_fields,
        syslog=dict(syslog or {}),
        runtime=str(hc.get("Runtime") or ""),
    )
