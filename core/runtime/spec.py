"""Encode a :class:`ContainerSpec` into the shim's input file.

Format: a sequence of records ``b"<key> <len>\\n" + payload + b"\\n"``; payloads with
several fields separate them with NUL bytes. The shim (shim.c) executes them; keys:

====================  =========================================================
state_dir, log_path,  paths (host)
exit_path
log_max_size/files    rotation (0 = never)
rootfs                mounted rootfs dir (host)
clone_flags           CLONE_NEW* for clone(); CLONE_NEWNS always
setns                 ``<CLONE_NEW* flag>\\0<path>`` (run mode): joined by the child (the monitor never
                      enters); a pid namespace only for the child's own child, forked once confined
exec_ns               same format (exec mode): joined by the intermediate process, in order
cgroup                a cgroup.procs file the child writes "0" into (repeatable)
tty, console_size,    ``1``; ``"<rows> <cols>"``; present when open_stdin; ``1``
stdin, stdin_once
op                    after pivot_root, in order: ``mount\\0src\\0target\\0fstype\\0flags\\0data``,
                      ``bind\\0hostsrc\\0target\\0MOUNT_ATTR_*\\0recursive\\0MS_<propagation>``,
                      ``tmpfs\\0target\\0MOUNT_ATTR_*\\0data`` (targets of bind and tmpfs resolved
                      in the root, missing ones created), ``symlink\\0target\\0linkpath``,
                      ``mkdir\\0path\\0octal mode``,
                      ``mask\\0path``, ``ropath\\0path``, ``rootro``, ``setro\\0path`` (one mount),
                      ``sysctl\\0key\\0value`` (written to /proc/sys/<key with / for .>),
                      ``mknod\\0path\\0c|b\\0major\\0minor\\0octal mode\\0uid\\0gid`` (parent dirs
                      resolved in the root; an existing file is kept)
uid_map, gid_map      ``"<inside> <outside> <count>\\n"...``: a user namespace (CLONE_NEWUSER in clone_flags)
                      whose maps the monitor writes before the child goes on (userns-remap); the
                      monitor then also joins the cgroups, sets oom_score_adj and rlimits for it
userns_join,          instead (``--pid container:X``): the child joins X's user namespace
userns_unshare        (path), then unshares these CLONE_NEW* flags (clone_flags is then 0)
cgroupns              ``1``: unshare the cgroup namespace after joining the cgroups
oom_score_adj         decimal, written to /proc/self/oom_score_adj before anything else
hostname, cwd         strings
rlimit                ``"<RLIMIT_*> <soft> <hard>"`` (-1 = unlimited)
uid, gid, groups      decimal; groups space separated
caps                  hex bounding set (= effective/permitted for uid 0)
nnp                   ``1`` for no_new_privs
seccomp               raw sock_filter array
init                  in-container path of the init (exec'd as ``init -- args``)
arg, env              repeatable, in order
====================  =========================================================
"""

from __future__ import annotations

import os
from typing import Any, Sequence
from pathlib import Path

from ..drivers.runtime import ContainerSpec, DeviceNode, ExecSpec, validate_ulimits
from ..errors import InvalidArgument
from . import capabilities  # seccomp (its syscall tables) by the first spec that needs a filter

CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS = 0x00020000, 0x02000000, 0x04000000
CLONE_NEWIPC, CLONE_NEWPID, CLONE_NEWNET = 0x08000000, 0x20000000, 0x40000000
NS_FLAGS = {"net": CLONE_NEWNET, "ipc": CLONE_NEWIPC, "uts": CLONE_NEWUTS, "pid": CLONE_NEWPID,
            "cgroup": CLONE_NEWCGROUP}
NS_DEFAULT = {"net": None, "ipc": None, "uts": None, "pid": None, "cgroup": "host"}

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_RELATIME, MS_STRICTATIME = 1 << 21, 1 << 24
ATTR = {"ro": 1, "nosuid": 2, "nodev": 4, "noexec": 8}
TMPFS_ATTR = {**ATTR, "noatime": 0x10, "strictatime": 0x20, "nodiratime": 0x80}  # MOUNT_ATTR_* for fsmount
MS_PRIVATE, MS_SLAVE, MS_SHARED = 1 << 18, 1 << 19, 1 << 20
PROPAGATION = {"private": MS_PRIVATE, "rprivate": MS_PRIVATE, "slave": MS_SLAVE, "rslave": MS_SLAVE,
               "shared": MS_SHARED, "rshared": MS_SHARED}  # r*: with the bind's AT_RECURSIVE
MS_OPT = {"ro": MS_RDONLY, "nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC,
          "rw": 0, "relatime": MS_RELATIME, "strictatime": MS_STRICTATIME}

# made with mknod, as runc does outside user namespaces: a bind of the host's node would let a
# container chmod/chown the host's /dev/null
DEVICES = [DeviceNode("/dev/null", "c", 1, 3), DeviceNode("/dev/zero", "c", 1, 5), DeviceNode("/dev/full", "c", 1, 7),
           DeviceNode("/dev/random", "c", 1, 8), DeviceNode("/dev/urandom", "c", 1, 9),
           DeviceNode("/dev/tty", "c", 5, 0)]
CGROUP_ROOT = "/sys/fs/cgroup"
CLONE_NEWUSER = 0x10000000
INIT_TARGET = "/sbin/docker-init"


def _s(v: str | bytes | int) -> bytes:
    b = v if isinstance(v, bytes) else str(v).encode("utf-8", "surrogateescape")
    return b


def _fields(*vals: str | int) -> bytes:
    out = [v if isinstance(v, bytes) else str(v).encode("utf-8", "surrogateescape") for v in vals]
    data = b"\0".join(out)
    if data.count(0) != max(len(out) - 1, 0):  # one NUL between fields, none inside one (~80 a start)
        raise InvalidArgument("NUL byte in container configuration")
    return data


def encode(records: list[tuple[str, bytes]]) -> bytes:
    out = bytearray()
    for key, payload in records:
        out += b"%s %d\n" % (key.encode(), len(payload)) + payload + b"\n"
    return bytes(out)


def _mount_depth(target: str) -> int:
    return len([p for p in target.split("/") if p])


def _container_caps(spec: ContainerSpec) -> list[str]:
    """The capabilities a container (and so its execs) runs with."""
    if spec.privileged:
        return capabilities.resolve(privileged=True)
    if spec.capabilities is not None:
        return [capabilities.normalize(c) for c in spec.capabilities]
    return list(capabilities.DOCKER_DEFAULT)


def _id_map(entries: list[tuple[int, int, int]]) -> str:
    return "".join(f"{inside} {outside} {count}\n" for inside, outside, count in entries)


def _host_node(dev: DeviceNode) -> str:
    """The host's node of ``dev`` (same type and numbers), to bind where mknod is not allowed
    (in a user namespace, as runc does)."""
    import stat as st_

    want = (st_.S_IFBLK if dev.type == "b" else st_.S_IFCHR, os.makedev(dev.major, dev.minor))

    def same(path: str) -> bool:
        try:
            s = os.stat(path)
        except OSError:
            return False
        return (st_.S_IFMT(s.st_mode), s.st_rdev) == want

    if same(dev.path):
        return dev.path
    for root, _dirs, files in os.walk("/dev"):
        for name in files:
            if same(os.path.join(root, name)):
                return os.path.join(root, name)
    raise InvalidArgument(f"no host device node {dev.type} {dev.major}:{dev.minor} to bind for {dev.path} "
                          "in a user namespace")


def _device(op: Any, dev: DeviceNode, userns: bool) -> None:
    if userns:
        if not dev.path.startswith("/") or dev.type not in ("c", "b"):
            raise InvalidArgument(f"invalid device {dev.path}")
        op("bind", _host_node(dev), dev.path, ATTR["nosuid"] | ATTR["noexec"], 0, 0)
    else:
        _mknod(op, dev)


def _mknod(op: Any, dev: DeviceNode) -> None:
    if not dev.path.startswith("/") or dev.type not in ("c", "b"):
        raise InvalidArgument(f"invalid device {dev.path}")
    op("mknod", dev.path, dev.type, dev.major, dev.minor, "%o" % (dev.mode & 0o7777), dev.uid, dev.gid)


def _cgroup_ops(op: Any, spec: ContainerSpec, private: bool) -> None:
    """/sys/fs/cgroup as Docker shows it: a tmpfs holding one mount per hierarchy (or the
    cgroup2 mount itself on a v2-only host), read-only unless privileged. A private cgroup
    namespace mounts each hierarchy (its root is the container's cgroup); the host's namespace
    gets binds of the container's own directories (runc's cgroupns=host behaviour)."""
    if not spec.cgroup_mounts:
        return
    ro = not spec.privileged
    on_tmpfs = any(m.name for m in spec.cgroup_mounts)
    if on_tmpfs:
        op("tmpfs", CGROUP_ROOT, ATTR["nosuid"] | ATTR["nodev"] | ATTR["noexec"], "mode=755")
    for m in spec.cgroup_mounts:
        target = f"{CGROUP_ROOT}/{m.name}" if m.name else CGROUP_ROOT
        if private:
            op("mount", "cgroup", target, m.fstype, MS_NOSUID | MS_NODEV | MS_NOEXEC | (MS_RDONLY if ro else 0),
               m.options if m.fstype == "cgroup" else "")
        else:
            op("bind", m.host_dir, target,
               ATTR["nosuid"] | ATTR["nodev"] | ATTR["noexec"] | (ATTR["ro"] if ro else 0), 0)
    if on_tmpfs:
        for target, link in spec.cgroup_links:
            op("symlink", target, f"{CGROUP_ROOT}/{link}")
        if ro:
            op("setro", CGROUP_ROOT)


# Record blocks shared by a container's spec and an exec's.

def _add_files(add: Any, state_dir: Path, log_path: Path, exit_path: Path, max_size: int, max_files: int,
               rootfs: str) -> None:
    add("version", 1)
    add("state_dir", str(state_dir))
    add("log_path", str(log_path))
    add("exit_path", str(exit_path))
    add("log_max_size", max_size)
    add("log_max_files", max_files)
    add("rootfs", rootfs)


def _add_stdio(add: Any, tty: bool, console_size: tuple[int, int] | None, open_stdin: bool,
               stdin_once: bool) -> None:
    if tty:
        add("tty", 1)
        if console_size:
            add("console_size", f"{console_size[0]} {console_size[1]}")
    if open_stdin:
        add("stdin", 1)
        add("stdin_once", int(stdin_once))


def _add_command(add: Any, args: list[str], env: list[str]) -> None:
    for a in args:
        add("arg", a)
    for e in env:
        if "=" not in e:
            raise InvalidArgument(f"invalid environment variable: {e}")
        add("env", e)


def build(spec: ContainerSpec, *, state_dir: Path, log_path: Path, exit_path: Path,
          init_path: str) -> bytes:
    """The shim input for ``spec``. Raises InvalidArgument for impossible settings."""
    if not spec.args:
        raise InvalidArgument("no command specified")
    r: list[tuple[str, bytes]] = []

    def add(key: str, *vals: str | int) -> None:
        r.append((key, _fields(*vals)))

    _add_files(add, state_dir, log_path, exit_path, max(0, spec.log_max_size), max(1, spec.log_max_files),
               str(Path(spec.rootfs).resolve()))
    if spec.json_log_path is not None:  # the json-file driver (Docker's on-disk format, see shim.c jlog_*)
        add("json_log_path", str(spec.json_log_path))
        add("json_log_max_size", max(0, spec.json_log_max_size))
        add("json_log_max_files", max(1, spec.json_log_max_files))
        if spec.json_log_compress:
            add("json_log_compress", 1)
    for key, value in spec.syslog.items():  # the syslog driver (shim.c slog_*)
        add(f"syslog_{key}", value)

    flags = CLONE_NEWNS
    ns = {**NS_DEFAULT, **spec.namespaces}
    for kind, val in ns.items():
        if kind not in NS_FLAGS:
            raise InvalidArgument(f"unsupported namespace kind {kind!r}")
        if val is None and kind == "cgroup":
            add("cgroupns", 1)  # unshared once in its cgroups: the namespace's root is the container's cgroup
        elif val is None:
            flags |= NS_FLAGS[kind]
        elif val != "host":
            add("setns", NS_FLAGS[kind], val)
    userns = bool(spec.uid_map)
    if userns:
        if not spec.gid_map:
            raise InvalidArgument("a user namespace needs both a uid and a gid map")
        if ns["pid"] not in (None, "host"):  # --pid container:X: X's user namespace, as Docker
            user_ns = str(Path(ns["pid"]).parent / "user")
            try:
                shared = os.readlink(user_ns) == os.readlink("/proc/self/ns/user")
            except OSError:
                raise InvalidArgument(f"cannot join the user namespace of {user_ns}: not running") from None
            if shared:  # X runs with --userns host: joining it would make this one real root
                raise InvalidArgument("cannot share the PID namespace of a container running in the host's "
                                      "user namespace when user namespaces are enabled")
            add("userns_join", user_ns)
            add("userns_unshare", flags)  # made by the child once in X's user namespace
            flags = 0
        else:
            flags |= CLONE_NEWUSER
            add("uid_map", _id_map(spec.uid_map))
            add("gid_map", _id_map(spec.gid_map))
    add("clone_flags", flags)
    for p in spec.cgroup_procs:
        add("cgroup", p)
    if spec.oom_score_adj is not None:
        add("oom_score_adj", int(spec.oom_score_adj))
    _add_stdio(add, spec.tty, spec.console_size, spec.open_stdin, spec.stdin_once)

    # --- mounts, after pivot_root, in order
    def op(*vals: str | int) -> None:
        add("op", *vals)

    priv = spec.privileged
    op("mount", "proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "")
    for key, value in sorted(spec.sysctls.items()):  # IPC namespace ones; before /proc/sys turns read-only
        op("sysctl", key, value)
    op("mount", "tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k")
    op("mount", "devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
       "newinstance,ptmxmode=0666,mode=0620,gid=5")
    if spec.shm_size is not None:  # None: --ipc none, no /dev/shm at all
        op("mount", "shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
           f"mode=1777,size={spec.shm_size}")
    if ns["ipc"] is None:
        op("mount", "mqueue", "/dev/mqueue", "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC, "")
    op("mount", "sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | (0 if priv else MS_RDONLY), "")
    _cgroup_ops(op, spec, private=ns["cgroup"] is None)
    for dev in DEVICES:
        _device(op, dev, userns)
    for target, link in [("pts/ptmx", "/dev/ptmx"), ("/proc/self/fd", "/dev/fd"),
                         ("/proc/self/fd/0", "/dev/stdin"), ("/proc/self/fd/1", "/dev/stdout"),
                         ("/proc/self/fd/2", "/dev/stderr"), ("/proc/kcore", "/dev/core")]:
        op("symlink", target, link)
    for m in sorted(spec.mounts, key=lambda m: _mount_depth(m.target)):
        if not m.target.startswith("/"):
            raise InvalidArgument(f"invalid mount config: mount path must be absolute: {m.target}")
        if m.type == "bind":
            if not Path(m.source).exists():
                raise InvalidArgument('invalid mount config for type "bind": '
                                      f'bind source path does not exist: {m.source}')
            attr = sum(ATTR[o] for o in m.options if o in ATTR)
            prop = next((PROPAGATION[o] for o in m.options if o in PROPAGATION), 0)  # 0: private
            op("bind", m.source, m.target, attr, int("rbind" in m.options or "bind" not in m.options), prop)
            if "ro-top" in m.options:  # read-only on the top mount only: submounts stay writable
                op("setro", m.target)
        elif m.type == "tmpfs":
            attr, data = 0, []
            for o in m.options:
                if o in TMPFS_ATTR:
                    attr |= TMPFS_ATTR[o]
                elif o not in ("rw", "relatime", "exec", "suid", "dev", "atime", "diratime"):
                    data.append(o)  # size=, mode=, ... and superblock flags (sync, dirsync)
            op("tmpfs", m.target, attr, ",".join(data))
        else:
            fl = 0
            data = []
            for o in m.options:
                if o in MS_OPT:
                    fl |= MS_OPT[o]
                else:
                    data.append(o)
            op("mount", m.source or m.type, m.target, m.type, fl, ",".join(data))
    for dev in spec.devices:
        _device(op, dev, userns)
    if spec.init:
        op("bind", init_path, INIT_TARGET, ATTR["ro"], 0)
    if not priv:
        for p in spec.masked_paths:
            op("mask", p)
        for p in spec.readonly_paths:
            op("ropath", p)
    if spec.cwd and spec.cwd != "/":
        if not spec.cwd.startswith("/"):
            raise InvalidArgument(f"the working directory '{spec.cwd}' is invalid, it needs to be an absolute path")
        op("mkdir", spec.cwd, "755")
    if spec.readonly_rootfs:
        op("rootro")

    if ns["uts"] is None:
        if spec.hostname:
            add("hostname", spec.hostname)
        if spec.domainname:
            add("domainname", spec.domainname)
    add("cwd", spec.cwd or "/")
    for res, soft, hard in validate_ulimits(spec.ulimits):
        add("rlimit", f"{res} {soft} {hard}")
    add("uid", spec.uid)
    add("gid", spec.gid)
    add("groups", " ".join(str(g) for g in spec.additional_gids))
    caps = _container_caps(spec)
    add("caps", "%x" % capabilities.mask(caps))
    add("nnp", int(spec.no_new_privileges))
    from . import seccomp

    prog = seccomp.for_container(spec.seccomp, caps, priv)
    if prog:
        r.append(("seccomp", prog))
    if spec.init:
        add("init", INIT_TARGET)
    _add_command(add, spec.args, spec.env)
    return encode(r)


def exec_settings(spec: ContainerSpec) -> dict:
    """What an exec into this container needs later (kept in the runtime's state dir)."""
    return {"caps": _container_caps(spec), "privileged": spec.privileged, "nnp": bool(spec.no_new_privileges),
            "seccomp": spec.seccomp, "cgroup_procs": list(spec.cgroup_procs), "oom_score_adj": spec.oom_score_adj,
            "rootfs": str(Path(spec.rootfs).resolve())}


# joined by the shim's intermediate process (never the monitor), each by an fd opened before the
# first setns; pid only places the final process, which is forked once everything is confined
# user last: joined as host root, every other namespace can be entered (also a network namespace
# the host owns while the container's user namespace owns the rest); then the process is root
# of the container's user namespace, as unprivileged on the host as the container
EXEC_NS_ORDER = ["pid", "cgroup", "ipc", "uts", "net", "mnt", "user"]


def exec_namespaces(pid: int) -> list[str]:
    """The namespaces of process ``pid`` an exec joins (in order): those not the daemon's."""
    def same(kind: str) -> bool:
        try:
            return os.readlink(f"/proc/self/ns/{kind}") == os.readlink(f"/proc/{pid}/ns/{kind}")
        except OSError:
            return False

    return [kind for kind in EXEC_NS_ORDER if not same(kind)]


def build_exec(spec: ExecSpec, settings: dict, pid: int, *, state_dir: Path, log_path: Path,
               exit_path: Path, monitor_child: bool = False, namespaces: Sequence[str] | None = None) -> bytes:
    """The shim input to run ``spec`` inside the container whose pid 1 is ``pid`` (host pid).
    ``monitor_child``: the process the daemon spawns is the monitor (the daemon reaps it).
    ``namespaces``: :func:`exec_namespaces` of ``pid``, if known."""
    if not spec.args:
        raise InvalidArgument("No exec command specified")
    r: list[tuple[str, bytes]] = []

    def add(key: str, *vals: str | int) -> None:
        r.append((key, _fields(*vals)))

    _add_files(add, state_dir, log_path, exit_path, 0, 1, settings.get("rootfs") or "/")
    if monitor_child:
        add("monitor_child", 1)
    add("exec_root", f"/proc/{pid}/root")
    flags = dict(NS_FLAGS, mnt=CLONE_NEWNS, user=CLONE_NEWUSER)
    for kind in exec_namespaces(pid) if namespaces is None else namespaces:
        add("exec_ns", flags[kind], f"/proc/{pid}/ns/{kind}")
    add("clone_flags", 0)
    for p in settings.get("cgroup_procs") or []:
        add("cgroup", p)
    if settings.get("oom_score_adj") is not None:
        add("oom_score_adj", int(settings["oom_score_adj"]))
    _add_stdio(add, spec.tty, spec.console_size, spec.open_stdin, True)
    cwd = spec.cwd or "/"
    if not cwd.startswith("/"):
        raise InvalidArgument(f"the working directory '{cwd}' is invalid, it needs to be an absolute path")
    add("cwd", cwd)
    add("uid", spec.uid)
    add("gid", spec.gid)
    add("groups", " ".join(str(g) for g in spec.additional_gids))
    priv = bool(settings.get("privileged")) or spec.privileged
    caps = capabilities.resolve(privileged=True) if priv else list(settings.get("caps") or capabilities.DOCKER_DEFAULT)
    add("caps", "%x" % capabilities.mask(caps))
    add("nnp", int(bool(settings.get("nnp"))))
    ccaps = list(settings.get("caps") or capabilities.DOCKER_DEFAULT)  # the container's own filter
    from . import seccomp

    prog = seccomp.for_container(settings.get("seccomp", "default"), ccaps, bool(settings.get("privileged")))
    if prog:
        r.append(("seccomp", prog))
    _add_command(add, spec.args, spec.env)
    return encode(r)
