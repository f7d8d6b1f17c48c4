"""cgroup drivers (``dockyard.cgroups``): resource limits, accounting, freeze and kill-all.

A cgroup driver owns one directory (the *parent*, config option ``parent``, default
``"dockyard"``) in every cgroup hierarchy it uses, and one child directory per container
below it, named by the container id. A container may instead be created under its own
parent (Docker's ``--cgroup-parent``, e.g. ``/kubepods/burstable/pod<uid>``): its cgroup is
then ``<parent>/<id>`` in every hierarchy, the driver creates the missing ancestors (v1
cpuset ones with the cpus/mems of their parent, v2 ones with the controllers enabled in
``cgroup.subtree_control`` down the path), remembers which ones it created (in its state
directory, so a restarted daemon still knows) and removes only those, and only when empty.
Built-in backends live in the ``dockyard-cgroups``
distribution (entry points ``v1``, ``v2``, ``auto``); ``fake`` is an in-memory driver for
API tests (:class:`dockyard.testing.fake_cgroups.FakeCgroups`).

Construction is ``cls(config: dict, root: pathlib.Path, state: pathlib.Path)``; unknown
config keys raise :class:`dockyard.errors.ConfigError`. A classmethod ``check()`` raises
:class:`dockyard.errors.SkipPlugin` when this host cannot run the backend.

All methods are synchronous: they are a few small file writes and reads.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Protocol, runtime_checkable

from ..errors import InvalidArgument

#: Docker's stats JSON pieces produced by :meth:`CgroupDriver.stats`:
#: ``memory_stats``, ``cpu_stats``, ``pids_stats``, ``blkio_stats``.
CgroupStats = dict[str, Any]

MIN_MEMORY = 6 * 1024 * 1024  # Docker's linuxMinMemory
MIN_CPU_SHARES, MAX_CPU_SHARES = 2, 262144


def parse_cpulist(text: str) -> set[int]:
    """Parse a kernel CPU list such as ``"0-3,8"`` into a set; raise ValueError when malformed."""
    out: set[int] = set()
    for part in text.strip().split(","):
        part = part.strip()
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        a, b = int(lo), int(hi) if sep else int(lo)
        if a < 0 or b < a:
            raise ValueError(part)
        out.update(range(a, b + 1))
    return out


def online_cpus() -> int:
    """CPUs this process may run on (what Docker's ``sysinfo.NumCPU`` counts)."""
    try:
        return len(os.sched_getaffinity(0))
    except OSError:  # pragma: no cover
        return os.cpu_count() or 1


@dataclass(frozen=True)
class DeviceRule:
    """One devices-cgroup rule, as in the kernel's cgroup-v1 devices.allow/devices.deny:
    ``type`` "a" (all), "c" or "b"; ``major``/``minor`` None for ``*``; ``access`` a subset
    of "rwm". Rules apply in order, the last match wins (runc's semantics)."""

    allow: bool
    type: str = "a"
    major: int | None = None
    minor: int | None = None
    access: str = "rwm"

    def __str__(self) -> str:
        if self.type == "a":
            return "a"
        num = lambda n: "*" if n is None else str(n)  # noqa: E731
        return f"{self.type} {num(self.major)}:{num(self.minor)} {self.access}"


def _c(major: int | None, minor: int | None, access: str = "rwm", allow: bool = True) -> DeviceRule:
    return DeviceRule(allow, "c", major, minor, access)


#: What every non-privileged container may use: moby's oci/defaults.go list followed by
#: runc's AllowedDevices (which runc appends after the user's rules). /dev/net/tun (10:200)
#: is not there: runc 1.2 dropped it. The user's --device and --device-cgroup-rule rules go
#: between DEFAULT_DEVICE_RULES_HEAD and DEFAULT_DEVICE_RULES_TAIL.
DEFAULT_DEVICE_RULES_HEAD: tuple[DeviceRule, ...] = (
    DeviceRule(False, "a"),
    _c(1, 5), _c(1, 3), _c(1, 9), _c(1, 8), _c(5, 0), _c(5, 1),  # zero null urandom random tty console
    _c(10, 229, allow=False),  # fuse
)
DEFAULT_DEVICE_RULES_TAIL: tuple[DeviceRule, ...] = (
    _c(None, None, "m"), DeviceRule(True, "b", None, None, "m"),  # mknod of anything (opening is denied)
    _c(1, 3), _c(1, 8), _c(1, 7), _c(5, 0), _c(1, 5), _c(1, 9),  # null random full tty zero urandom
    _c(136, None), _c(5, 2),  # /dev/pts/*, /dev/ptmx
)
ALLOW_ALL_DEVICES: tuple[DeviceRule, ...] = (DeviceRule(True, "a"),)


@dataclass
class Resources:
    """Resource limits for one container. ``None`` everywhere means "leave the default".

    Units follow Docker's HostConfig: bytes for memory, ``nano_cpus`` = ``--cpus`` * 1e9,
    ``memory_swap`` is the memory+swap *total* (-1 = unlimited swap), ``pids_limit`` <= 0
    means unlimited.
    """

    memory: int | None = None
    memory_swap: int | None = None
    memory_reservation: int | None = None
    nano_cpus: int | None = None
    cpu_period: int | None = None
    cpu_quota: int | None = None
    cpu_shares: int | None = None
    cpuset_cpus: str | None = None
    cpuset_mems: str | None = None
    pids_limit: int | None = None
    blkio_weight: int | None = None
    #: ``memory.swappiness`` (0-100; cgroup v1 only): 0 is a value, None and -1 are "unset"
    memory_swappiness: int | None = None
    #: device access rules, in order; None leaves the cgroup's (inherited) rules. Set at
    #: create only, by the daemon (dockyard.containers.devices): never from HostConfig keys
    devices: list[DeviceRule] | None = None

    _KEYS: ClassVar[dict[str, str]] = {
        "Memory": "memory", "MemorySwap": "memory_swap", "MemoryReservation": "memory_reservation",
        "NanoCpus": "nano_cpus", "CpuPeriod": "cpu_period", "CpuQuota": "cpu_quota",
        "CpuShares": "cpu_shares", "CpusetCpus": "cpuset_cpus", "CpusetMems": "cpuset_mems",
        "PidsLimit": "pids_limit", "BlkioWeight": "blkio_weight",
    }

    def is_empty(self) -> bool:
        return all(getattr(self, f.name) is None for f in fields(self))

    def cfs(self) -> tuple[int | None, int | None]:
        """The effective ``(quota_us, period_us)``: NanoCpus becomes quota over a 100 ms period."""
        if self.nano_cpus:
            period = self.cpu_period or 100_000
            return max(1000, self.nano_cpus * period // 1_000_000_000), period
        return self.cpu_quota, self.cpu_period

    @classmethod
    def from_host_config(cls, hc: dict[str, Any], *, ncpus: int | None = None,
                         update: bool = False) -> "Resources":
        """Read Docker's HostConfig keys and validate them the way dockerd does.

        Zero, empty and missing values mean "not set" (Docker's zero values), except
        ``MemorySwap=-1`` (unlimited swap) and ``PidsLimit`` <= 0 (unlimited, kept as 0).
        When ``Memory`` is set and ``MemorySwap`` is not, swap defaults to the memory limit
        (``memory_swap = 2 * memory``) like Docker. ``update=True`` relaxes the rules that
        ``docker update`` relaxes (swap without memory). Raises :class:`InvalidArgument`
        with Docker's messages.
        """
        hc = hc or {}
        vals: dict[str, Any] = {}
        for key, attr in cls._KEYS.items():
            v = hc.get(key)
            if v is None or v == "" or (v == 0 and key not in ("PidsLimit",)):
                continue
            if attr in ("cpuset_cpus", "cpuset_mems"):
                if not isinstance(v, str):
                    raise InvalidArgument(f"invalid {key}: {v!r}")
            elif not isinstance(v, int) or isinstance(v, bool):
                raise InvalidArgument(f"invalid {key}: {v!r} is not an integer")
            vals[attr] = v
        swappiness = hc.get("MemorySwappiness")
        if swappiness is not None and swappiness != -1:
            if not isinstance(swappiness, int) or isinstance(swappiness, bool) or not 0 <= swappiness <= 100:
                raise InvalidArgument(f"Invalid value: {swappiness}, valid memory swappiness range is 0-100")
            vals["memory_swappiness"] = swappiness
        r = cls(**vals)
        ncpus = ncpus or online_cpus()

        if r.memory is not None and r.memory < MIN_MEMORY:
            raise InvalidArgument("Minimum memory limit allowed is 6MB")
        if r.memory_swap is not None and r.memory_swap < -1:
            raise InvalidArgument(f"invalid MemorySwap: {r.memory_swap}")
        if r.memory and r.memory_swap and r.memory_swap > 0 and r.memory_swap < r.memory:
            raise InvalidArgument("Minimum memoryswap limit should be larger than memory limit, see usage")
        if not update and r.memory is None and r.memory_swap and r.memory_swap > 0:
            raise InvalidArgument("You should always set the Memory limit when using Memoryswap limit, see usage")
        if r.memory and r.memory_swap is None and not update:
            r.memory_swap = 2 * r.memory
        if r.memory_reservation is not None:
            if r.memory_reservation < MIN_MEMORY:
                raise InvalidArgument("Minimum memory reservation allowed is 6MB")
            if r.memory and r.memory < r.memory_reservation:
                raise InvalidArgument("Minimum memory limit can not be less than memory reservation limit, see usage")
        if r.nano_cpus is not None:
            if r.cpu_period:
                raise InvalidArgument("Conflicting options: Nano CPUs and CPU Period cannot both be set")
            if r.cpu_quota:
                raise InvalidArgument("Conflicting options: Nano CPUs and CPU Quota cannot both be set")
            if r.nano_cpus < 0 or r.nano_cpus > ncpus * 1_000_000_000:
                raise InvalidArgument(
                    f"Range of CPUs is from 0.01 to {ncpus}.00, as there are only {ncpus} CPUs available")
        if r.cpu_period is not None and not 1000 <= r.cpu_period <= 1_000_000:
            raise InvalidArgument("CPU cfs period can not be less than 1ms (i.e. 1000) "
                                  "or larger than 1s (i.e. 1000000)")
        if r.cpu_quota is not None and 0 < r.cpu_quota < 1000:
            raise InvalidArgument("CPU cfs quota can not be less than 1ms (i.e. 1000)")
        if r.cpu_quota is not None and r.cpu_quota < -1:
            raise InvalidArgument(f"invalid CpuQuota: {r.cpu_quota}")
        if r.cpu_shares is not None:  # Docker clamps instead of refusing
            r.cpu_shares = min(max(r.cpu_shares, MIN_CPU_SHARES), MAX_CPU_SHARES)
        if r.blkio_weight is not None and not 10 <= r.blkio_weight <= 1000:
            raise InvalidArgument("Range of blkio weight is from 10 to 1000")
        if r.pids_limit is not None and r.pids_limit < 0:
            r.pids_limit = 0
        for attr, what in (("cpuset_cpus", "cpuset cpus"), ("cpuset_mems", "cpuset mems")):
            text = getattr(r, attr)
            if text is None:
                continue
            try:
                wanted = parse_cpulist(text)
            except ValueError:
                raise InvalidArgument(f"Invalid value {text} for {what}") from None
            if attr == "cpuset_cpus" and wanted - set(range(os.cpu_count() or ncpus)):
                raise InvalidArgument(
                    f"Requested CPUs are not available - requested {text}, "
                    f"available: 0-{(os.cpu_count() or ncpus) - 1}")
        return r


@runtime_checkable
class CgroupDriver(Protocol):
    """What the daemon needs from a cgroup backend.

    ``cid`` is a container id: a non-empty name without ``/`` (anything else raises
    :class:`InvalidArgument`). Methods on a cid without cgroups raise
    :class:`dockyard.errors.NotFound`, except :meth:`remove` and :meth:`exists`.
    """

    #: backend name, e.g. ``"v1"`` or ``"v2"`` (``auto`` reports what it picked)
    name: str
    #: cgroup version, reported by ``GET /info`` as ``CgroupVersion``
    version: int
    #: ``GET /info`` ``CgroupDriver``: always ``"cgroupfs"`` here (no systemd)
    driver: str

    def create(self, cid: str, resources: Resources, parent: str | None = None) -> None:
        """Make the container's cgroup(s) and apply ``resources``.

        ``parent`` (Docker's ``HostConfig.CgroupParent``): a path from the root of each
        hierarchy, leading slash or not, cleaned like Go's ``filepath.Join`` (``..`` stops at
        the root); ``None`` is the driver's own parent. Every other method then finds the
        container under it.

        A limit the kernel refuses raises :class:`InvalidArgument` with the kernel's reason,
        and leaves nothing behind. An existing cgroup raises :class:`dockyard.errors.Conflict`.
        """

    def path(self, cid: str) -> str:
        """The container's cgroup path from the hierarchy root, as ``/proc/<pid>/cgroup``
        shows it: ``/<parent>/<cid>``."""

    def adopt(self, cid: str, parent: str | None) -> None:
        """Tell the driver under which ``parent`` (as given to :meth:`create`) an existing
        container's cgroup is: a restarted daemon calls it for each container it restores."""

    def procs_files(self, cid: str) -> list[str]:
        """Absolute paths of every ``cgroup.procs`` file the container's init must write its
        own pid to before exec (one per hierarchy, plus the v2 leaf if used for tracking)."""

    def attach(self, cid: str, pid: int) -> None:
        """Move ``pid`` into the container's cgroup(s) (exec'd processes, tests)."""

    def update(self, cid: str, resources: Resources) -> None:
        """Change limits live (``docker update``); ``None`` fields stay as they are."""

    def pids(self, cid: str) -> list[int]:
        """Process ids in the container's cgroup, sorted."""

    def stats(self, cid: str) -> CgroupStats:
        """Docker's stats pieces: ``memory_stats``, ``cpu_stats``, ``pids_stats``, ``blkio_stats``
        (shapes of docker/api/types/container/stats.go). The daemon adds ``read``, ``precpu_stats``..."""

    def freeze(self, cid: str) -> None:
        """Pause every process; returns once the kernel reports the cgroup frozen."""

    def thaw(self, cid: str) -> None:
        """Undo :meth:`freeze`; returns once the cgroup is thawed."""

    def kill_all(self, cid: str, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to every process in the cgroup (does not wait for them to exit)."""

    def oom_kills(self, cid: str) -> int:
        """Number of OOM kills in this cgroup so far."""

    def oom_fd(self, cid: str) -> int | None:
        """An fd that becomes readable on each OOM event (and when the cgroup goes away), or
        ``None`` when the backend has none (the daemon then checks :meth:`oom_kills` on exit).
        The caller owns and closes the fd."""

    def remove(self, cid: str, timeout: float = 5.0) -> None:
        """Remove every directory of the container, retrying while busy; after half the
        timeout, :meth:`kill_all` stragglers. Missing cgroups are fine (idempotent). Raises
        :class:`dockyard.errors.InUse` if the cgroup is still busy after ``timeout``."""

    def list(self) -> list[str]:
        """Container ids that have a cgroup under the driver's parent or under a parent given
        to :meth:`create`/:meth:`adopt` (startup reconciliation); never an ancestor directory."""

    def exists(self, cid: str) -> bool:
        """Whether any cgroup directory of ``cid`` exists."""

    def remove_parent(self) -> None:
        """Remove the (empty) parent directories, and the empty per-container parents this
        driver created; for tests and uninstall. Idempotent."""
