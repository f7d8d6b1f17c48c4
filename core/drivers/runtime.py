"""Runtime drivers (``dockyard.runtime``): start, watch and stop container processes.

A runtime turns a fully resolved :class:`ContainerSpec` into a running process and keeps
the record of its end. The daemon prepares everything first (image rootfs mounted by the
storage driver, cgroups created by the cgroup driver, network namespace if any, the
/etc/hosts, /etc/resolv.conf and /etc/hostname files); the runtime only executes.

Per container the runtime owns a *state dir* (``<exec-root>/runtime/<name>/<id>`` by
default) holding at least ``exit`` (``"<code> <signal> <finished_at_ns>\\n"``, written
atomically when the container ends) and the log (binary records, read with
:mod:`dockyard.runtime.logfile`). Exit codes follow Docker: 128+N when killed by signal N.

Errors: :meth:`Runtime.start` raises :class:`ContainerStartError` (400, Docker's wording,
with ``exit_code`` 127 for "not found" and 126 for "permission denied" that the daemon
records as the container's exit code).
"""

from __future__ import annotations

import glob
import resource
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, ClassVar, Iterator, Literal, Protocol, runtime_checkable

from ..errors import InvalidArgument

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # a process without Env

# Docker's lists (moby daemon/pkg/oci/defaults.go); /proc/interrupts and the per-CPU
# thermal_throttle directories since GHSA-6fw5-f8r9-fgfm (they leak other tenants' activity).
DEFAULT_MASKED_PATHS = [
    "/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
    "/sys/firmware", "/sys/devices/virtual/powercap",
    *sorted(glob.glob("/sys/devices/system/cpu/cpu[0-9]*/thermal_throttle"),
            key=lambda p: int(p.split("/")[5][3:])),
]
DEFAULT_READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]

# `docker run --ulimit NAME=soft:hard` names -> RLIMIT_* numbers.
ULIMIT_NAMES = {
    "as": resource.RLIMIT_AS, "core": resource.RLIMIT_CORE, "cpu": resource.RLIMIT_CPU,
    "data": resource.RLIMIT_DATA, "fsize": resource.RLIMIT_FSIZE, "locks": getattr(resource, "RLIMIT_LOCKS", 10),
    "memlock": resource.RLIMIT_MEMLOCK, "msgqueue": resource.RLIMIT_MSGQUEUE,
    "nice": resource.RLIMIT_NICE, "nofile": resource.RLIMIT_NOFILE, "nproc": resource.RLIMIT_NPROC,
    "rss": resource.RLIMIT_RSS, "rtprio": resource.RLIMIT_RTPRIO, "rttime": resource.RLIMIT_RTTIME,
    "sigpending": resource.RLIMIT_SIGPENDING, "stack": resource.RLIMIT_STACK,
}

NamespaceKind = Literal["net", "ipc", "uts", "pid"]


@dataclass
class Mount:
    """An extra mount. ``type`` "bind" (``source`` is a host path) or a filesystem type
    ("tmpfs"...). ``options``: "ro", "rbind", "nosuid", "nodev", "noexec", or for non-bind
    types the fs data ("size=64m", "mode=755")."""

    source: str
    target: str
    type: str = "bind"
    options: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DeviceNode:
    """A device node made (mknod) at ``path`` inside the container, like the host's node
    (``type`` "c" or "b", numbers, permission bits, owner)."""

    path: str
    type: str
    major: int
    minor: int
    mode: int = 0o666
    uid: int = 0
    gid: int = 0


@dataclass(frozen=True)
class CgroupMount:
    """One cgroup hierarchy the container sees at /sys/fs/cgroup/``name`` (``name`` "" is
    /sys/fs/cgroup itself: a cgroup-v2-only host). With a private cgroup namespace it is a
    fresh mount (``fstype`` "cgroup" with the v1 ``options`` such as "cpu,cpuacct", or
    "cgroup2"); with the host's namespace, a bind of ``host_dir``, the container's own
    cgroup directory, as runc does."""

    name: str
    fstype: str
    options: str
    host_dir: str


@dataclass
class ContainerSpec:
    """Everything a runtime needs to start one container. Paths are host paths except
    ``cwd``, mount targets and masked/readonly paths, which are inside the container."""

    id: str
    rootfs: Path  # an already mounted directory (the storage driver mounts it)
    args: list[str]
    env: list[str] = field(default_factory=lambda: [DEFAULT_PATH])
    cwd: str = "/"
    uid: int = 0
    gid: int = 0
    additional_gids: list[int] = field(default_factory=list)
    hostname: str = ""
    domainname: str = ""  # --domainname: the UTS namespace's NIS domain name
    tty: bool = False
    console_size: tuple[int, int] | None = None  # (height, width) for tty
    open_stdin: bool = False
    stdin_once: bool = False
    mounts: list[Mount] = field(default_factory=list)
    readonly_rootfs: bool = False
    capabilities: list[str] | None = None  # None = Docker's default set (see capabilities.resolve)
    privileged: bool = False
    no_new_privileges: bool = False
    seccomp: bool | str = "default"  # True/"default", False/"unconfined"
    ulimits: list[tuple[str, int, int]] = field(default_factory=list)  # (name, soft, hard), -1 = unlimited
    init: bool = False
    # kind -> None (new namespace), "host" (share the daemon's) or a path to join (/proc/<pid>/ns/net)
    namespaces: dict[str, str | None] = field(
        default_factory=lambda: {"net": None, "ipc": None, "uts": None, "pid": None})
    cgroup_procs: list[str] = field(default_factory=list)  # cgroup.procs files the process joins before exec
    masked_paths: list[str] = field(default_factory=lambda: list(DEFAULT_MASKED_PATHS))
    readonly_paths: list[str] = field(default_factory=lambda: list(DEFAULT_READONLY_PATHS))
    shm_size: int | None = 64 * 1024 * 1024  # None: no /dev/shm (--ipc none)
    # IPC-namespace sysctls (kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*): written by the
    # container's process in its own namespaces, after /proc is mounted and before exec
    sysctls: dict[str, str] = field(default_factory=dict)
    log_path: Path | None = None  # default <state_dir>/container.log
    log_max_size: int = 10 * 1024 * 1024  # 0 = no rotation
    log_max_files: int = 3
    # json-file driver: the shim also writes Docker's json-file format here (None: not written)
    json_log_path: Path | None = None
    json_log_max_size: int = 0  # 0 = no rotation
    json_log_max_files: int = 1
    json_log_compress: bool = False  # rotated files gzipped (-json.log.1.gz ...)
    # syslog driver: the shim's syslog_* keys (proto, path/host, port, facility, format, tag); empty: none
    syslog: dict[str, str | int] = field(default_factory=dict)
    state_dir: Path | None = None  # default <runtime state>/<id>; list() only sees the default
    devices: list[DeviceNode] = field(default_factory=list)  # besides the default null, zero, ... nodes
    oom_score_adj: int | None = None  # written to /proc/self/oom_score_adj before exec
    # /sys/fs/cgroup: hierarchies, plus (target, link name) symlinks such as ("cpu,cpuacct", "cpu");
    # namespaces["cgroup"] None (private) mounts them, "host" binds the container's directories
    cgroup_mounts: list[CgroupMount] = field(default_factory=list)
    cgroup_links: list[tuple[str, str]] = field(default_factory=list)
    # a user namespace (--userns-remap): (inside, outside, count) lines of uid_map/gid_map; empty
    # = the host's user namespace. The rootfs and volumes are owned by the mapped ids already
    uid_map: list[tuple[int, int, int]] = field(default_factory=list)
    gid_map: list[tuple[int, int, int]] = field(default_factory=list)
    # HostConfig.Runtime: which of the daemon's runtimes runs it ("" or the default's name: the
    # default; another name: the runtime driver serving it, e.g. "runc" for the oci plugin)
    runtime: str = ""


@dataclass
class ExecSpec:
    """A process to run inside a running container (``docker exec``). It joins all the
    container's namespaces, cgroups and root, with the container's capabilities (all of
    them if ``privileged``), no-new-privileges setting and seccomp filter."""

    id: str
    args: list[str]
    env: list[str] = field(default_factory=lambda: [DEFAULT_PATH])
    cwd: str = "/"
    uid: int = 0
    gid: int = 0
    additional_gids: list[int] = field(default_factory=list)
    tty: bool = False
    console_size: tuple[int, int] | None = None
    open_stdin: bool = False
    privileged: bool = False


class ExecStartError(InvalidArgument):
    """The exec process could not be started (Docker's "OCI runtime exec failed" wording);
    ``exit_code`` 126/127 is what the exec reports as its ExitCode."""

    PREFIX = "OCI runtime exec failed: exec failed: unable to start container process: "

    def __init__(self, detail: str, exit_code: int = 126, errno: int = 0) -> None:
        super().__init__(f"{self.PREFIX}{detail}: unknown")
        self.exit_code, self.errno, self.detail = exit_code, errno, detail


@dataclass
class ExitStatus:
    """How a container ended. ``exit_code`` is Docker's (128+signal when killed)."""

    exit_code: int
    signal: int = 0
    finished_at_ns: int = 0
    oom_killed: bool = False  # set by the daemon from the cgroup driver
    error: str = ""  # e.g. "monitor died" when the exit was not recorded


class ContainerStartError(InvalidArgument):
    """The container process could not be started (Docker: 400 with runc's wording)."""

    PREFIX = ("failed to create task for container: failed to create shim task: OCI runtime "
              "create failed: runc create failed: unable to start container process: ")

    def __init__(self, detail: str, exit_code: int = 127, errno: int = 0) -> None:
        super().__init__(f"{self.PREFIX}{detail}: unknown")
        self.exit_code, self.errno, self.detail = exit_code, errno, detail


def validate_ulimits(ulimits: list[tuple[str, int, int]]) -> list[tuple[int, int, int]]:
    """Map (name, soft, hard) to (RLIMIT_*, soft, hard); -1 means unlimited. Refuses unknown
    names, soft > hard, and hard limits above the daemon's own hard limit (InvalidArgument)."""
    out = []
    for name, soft, hard in ulimits:
        res = ULIMIT_NAMES.get(name)
        if res is None:
            raise InvalidArgument(f"invalid ulimit type: {name}")
        inf = resource.RLIM_INFINITY
        s = inf if soft < 0 else soft
        h = inf if hard < 0 else hard
        if h != inf and (s == inf or s > h):
            raise InvalidArgument(f"ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}")
        own = resource.getrlimit(res)[1]
        if own != inf and (h == inf or h > own):
            raise InvalidArgument(f"ulimit {name}: hard limit {hard} exceeds the daemon's limit {own}")
        out.append((res, soft if soft >= 0 else -1, hard if hard >= 0 else -1))
    return out


class LogRecord(Protocol):
    """One chunk of a container's output: ``stream`` 1 stdout, 2 stderr."""

    stream: int
    timestamp_ns: int
    data: bytes


class LogReader(Protocol):
    """What :meth:`Runtime.logs` returns: the container's output, oldest first, then live.
    (The built-in runtimes return :class:`dockyard.runtime.logfile.LogReader`; the contract
    does not depend on it.)"""

    def records(self, since_ns: int = 0, until_ns: int = 0) -> Iterator[Any]: ...

    def lines(self, since_ns: int = 0, until_ns: int = 0) -> Iterator[Any]: ...

    def tail(self, n: int, since_ns: int = 0, until_ns: int = 0) -> list[Any]: ...

    def follow(self, since_ns: int = 0, until_ns: int = 0, tail: int | None = None) -> AsyncIterator[Any]: ...


@runtime_checkable
class Runtime(Protocol):
    """The runtime contract (every runtime has these). Construction: ``cls(config: dict,
    root: Path, state: Path)``; an optional classmethod ``check()`` raises
    :class:`dockyard.errors.SkipPlugin` when this host cannot use the runtime.

    Containers keep running and are recorded while the daemon is down (live-restore): a new
    instance over the same ``state`` dir manages them (``list``, ``wait``, ``kill``...).

    What a runtime offers beyond this is a *capability*: one of the Protocols below
    (:data:`RUNTIME_CAPABILITIES`), named in the class attribute ``capabilities`` (a
    frozenset of names) and checked once when the driver loads. Core uses a capability only
    when the driver has it; a request that needs a missing one is a 400 naming the runtime.
    """

    name: ClassVar[str]

    async def start(self, spec: ContainerSpec) -> int:
        """Start the container; return its pid 1 as seen on the host. Raises
        ContainerStartError (nothing is left behind: no process, no state dir)."""

    async def wait(self, cid: str) -> ExitStatus:
        """Wait for the container to end (works for containers started by an earlier daemon)."""

    async def kill(self, cid: str, sig: int) -> None:
        """Send ``sig`` to the container's pid 1. NotFound/InvalidState if not running."""

    def state(self, cid: str) -> Literal["running", "exited", "unknown"]:
        """"unknown" when there is no state dir or the monitor died without an exit record."""

    def exit_status(self, cid: str) -> ExitStatus | None: ...

    def pid(self, cid: str) -> int | None:
        """Host pid of the container's pid 1 while running."""

    def logs(self, cid: str) -> LogReader: ...

    async def delete(self, cid: str, logs: bool = True) -> None:
        """SIGKILL if running, wait, then remove the state dir. Idempotent. ``logs=False``
        keeps the container's log files (an interrupted start is undone, the container stays)."""

    def list(self) -> list[str]:
        """Ids that have a state dir (for the daemon's reconcile at startup)."""


# -- optional capabilities ------------------------------------------------------------------


@runtime_checkable
class ExecRuntime(Protocol):
    """``exec``: processes started inside a running container (``docker exec``)."""

    async def exec(self, cid: str, spec: ExecSpec) -> int:
        """Start ``spec`` in running container ``cid``; return its host pid. ExecStartError."""

    async def exec_wait(self, cid: str, eid: str) -> ExitStatus: ...

    async def exec_kill(self, cid: str, eid: str, sig: int) -> None: ...

    def exec_logs(self, cid: str, eid: str) -> LogReader: ...

    def exec_stdin_path(self, cid: str, eid: str) -> Path:
        """FIFO feeding the exec's stdin (``open_stdin``)."""

    def exec_resize(self, cid: str, eid: str, height: int, width: int) -> None:
        """Set the exec's TTY size (no-op without a TTY)."""

    async def exec_delete(self, cid: str, eid: str) -> None: ...


@runtime_checkable
class TtyRuntime(Protocol):
    """``tty``: containers created with ``Tty: true`` get a terminal that can be resized."""

    def resize(self, cid: str, height: int, width: int) -> None:
        """Set the container's TTY size (no-op once it ended)."""


@runtime_checkable
class StdinRuntime(Protocol):
    """``stdin``: a container's stdin can be written (``OpenStdin``, attach with stdin)."""

    def stdin_path(self, cid: str) -> Path:
        """FIFO feeding the container's stdin: open it for writing; closing it is EOF when
        ``stdin_once``."""


@runtime_checkable
class StdinDetachRuntime(Protocol):
    """``stdin-detach``: detach keys. The client that closes the stdin FIFO next detached, so
    the close is neither EOF nor a hangup for the container's process."""

    def stdin_detach(self, cid: str) -> None: ...


@runtime_checkable
class ExecStdinDetachRuntime(Protocol):
    """``exec-stdin-detach``: the same for an exec's stdin."""

    def exec_stdin_detach(self, cid: str, eid: str) -> None: ...


@runtime_checkable
class MultiRuntime(Protocol):
    """``runtime-names``: the driver serves several ``--runtime`` names (the oci driver: one
    per OCI runtime binary), routed by :class:`dockyard.containers.runtimes.RuntimeSet`."""

    def names(self) -> list[str]:
        """``HostConfig.Runtime`` names this driver runs (its own name first)."""

    def path_of(self, name: str) -> str | None:
        """The binary ``docker info`` shows for ``name``."""

    def owns(self, cid: str) -> bool:
        """Whether this driver has the state of container ``cid`` (live-restore routing)."""


#: capability name -> Protocol, for :mod:`dockyard.drivers.contracts`
RUNTIME_CAPABILITIES: dict[str, type] = {
    "exec": ExecRuntime,
    "tty": TtyRuntime,
    "stdin": StdinRuntime,
    "stdin-detach": StdinDetachRuntime,
    "exec-stdin-detach": ExecStdinDetachRuntime,
    "runtime-names": MultiRuntime,
}
