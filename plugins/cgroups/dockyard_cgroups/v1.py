"""cgroup v1 backend: one directory per v1 hierarchy, plus the v2 tree for tracking on hybrid hosts.

Each controller's mount point comes from /proc/self/mountinfo, so separate ``cpu`` and
``cpuacct`` mounts (this kind of host) and the classic ``cpu,cpuacct`` co-mount both work.
On a hybrid host the container also gets a leaf in the controller-less unified tree, which
gives ``cgroup.kill`` (one-shot kill-all) and ``cgroup.events``.
"""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path
from typing import Any

from dockyard.drivers.cgroups import DeviceRule, Resources
from dockyard.errors import Conflict, NotSupported, SkipPlugin

from . import common as c
from .detect import V1_CONTROLLERS, Layout, host_layout

log = logging.getLogger("dockyard.cgroups.v1")
REQUIRED = ("memory", "cpu", "cpuacct", "pids", "freezer")


class CgroupV1:
    """The ``v1`` driver (see :class:`dockyard.drivers.CgroupDriver` for the contract)."""

    name = "v1"
    version = 1
    driver = "cgroupfs"
    #: optional contracts (dockyard.drivers.contracts): none beyond the base Protocol
    capabilities: frozenset[str] = frozenset()

    @classmethod
    def check(cls, layout: Layout | None = None) -> None:
        layout = layout or host_layout()
        missing = [ctl for ctl in REQUIRED if ctl not in layout.v1]
        if missing:
            raise SkipPlugin(f"cgroup v1 controllers not mounted: {', '.join(missing)}"
                             + (" (cgroup v2 host)" if layout.mode == "v2" else ""))

    def __init__(self, config: dict | None = None, root: Path | None = None, state: Path | None = None,
                 *, layout: Layout | None = None) -> None:
        self.parent = c.parse_config(config)
        self.layout = layout or host_layout()
        self.check(self.layout)
        # one entry per hierarchy: co-mounted controllers share a mount point
        self.mounts = sorted({Path(m) for ctl, m in self.layout.v1.items() if ctl in V1_CONTROLLERS})
        self.unified = Path(self.layout.unified) if self.layout.unified else None
        self.parents = c.Parents(state)
        # the container's directories per (cid, parent): a start and an exit ask for them ~10
        # times, and building 9 Paths costs more than the syscalls that use them
        self._paths: dict[tuple[str, str], list[Path]] = {}
        cpuset = self.layout.v1.get("cpuset")
        self._cpuset = f"{cpuset}/" if cpuset else None  # only this hierarchy has cpuset.* files
        self._parent_made: set[Path] = set()  # hierarchies where the default parent exists

    # -- paths ----------------------------------------------------------------------
    def _parent(self, cid: str) -> str:
        return self.parents.of.get(cid, self.parent)

    def _bases(self) -> list[Path]:
        return list(self.mounts) + ([self.unified] if self.unified else [])

    def _dir(self, cid: str, controller: str) -> Path | None:
        m = self.layout.v1.get(controller)
        return Path(m, self._parent(cid), cid) if m else None

    def _req(self, cid: str, controller: str) -> Path:
        """The directory of a REQUIRED controller (check() refused a host without it)."""
        return Path(self.layout.v1[controller], self._parent(cid), cid)

    def _tracking(self, cid: str) -> Path | None:
        return Path(self.unified, self._parent(cid), cid) if self.unified else None

    def _dirs(self, cid: str) -> list[Path]:
        key = (cid, self._parent(cid))
        dirs = self._paths.get(key)
        if dirs is None:
            if len(self._paths) > 4096:
                self._paths.clear()
            dirs = self._paths[key] = [Path(b, key[1], cid) for b in self._bases()]
        return list(dirs)

    def path(self, cid: str) -> str:
        """The container's cgroup path as /proc/<pid>/cgroup shows it (``/<parent>/<cid>``)."""
        c.check_cid(cid)
        return "/" + "/".join(x for x in (self._parent(cid), cid) if x)

    def adopt(self, cid: str, parent: str | None) -> None:
        """Tell the driver the parent of an existing container's cgroup (daemon restart)."""
        c.check_cid(cid)
        self.parents.set(cid, None if parent is None else c.normalize_parent(parent))

    def _need(self, cid: str) -> None:
        c.check_cid(cid)
        c.require(self._req(cid, "memory"), cid)

    # -- lifecycle -------------------------------------------------------------------
    def create(self, cid: str, resources: Resources, parent: str | None = None) -> None:
        c.check_cid(cid)
        rel = None if parent is None else c.normalize_parent(parent)
        with self.parents.lock:
            if self.exists(cid):
                raise Conflict(f"cgroup for container {cid} already exists")
            self.parents.set(cid, rel)
            created: list[Path] = []
            try:
                for b in self._bases():
                    if rel is None:
                        if b not in self._parent_made:  # made (or found) once: not 9 mkdirs a start
                            c.mkdirs(b, self.parent, on_new=self._inherit_cpuset)
                            self._parent_made.add(b)
                    else:
                        self.parents.mkdirs(b, rel, on_dir=self._inherit_cpuset)
                for b, d in zip(self._bases(), self._dirs(cid)):
                    try:
                        d.mkdir()
                    except FileNotFoundError:  # the parent went meanwhile (removed by hand)
                        self._parent_made.clear()
                        c.mkdirs(b, self.parent if rel is None else rel, on_new=self._inherit_cpuset)
                        d.mkdir()
                    created.append(d)
                    self._inherit_cpuset(d)
                self._apply(cid, resources)
            except BaseException:
                for d in reversed(created):
                    try:
                        d.rmdir()
                    except OSError:
                        pass
                self._release(cid)
                raise

    def _release(self, cid: str) -> None:
        """Forget the container's parent and remove the ancestors this driver created for it
        that nothing else uses any more."""
        with self.parents.lock:
            rel = self.parents.of.get(cid)
            if rel is None:
                return
            self.parents.set(cid, None)
            if rel in self.parents.of.values():
                return
            for b in self._bases():
                self.parents.release(b, rel)

    def _inherit_cpuset(self, d: Path) -> None:
        """A new v1 cpuset cgroup starts with empty cpus/mems: copy the parent's (runc does
        the same for an existing ancestor left empty)."""
        if self._cpuset is None or not str(d).startswith(self._cpuset):
            return
        for f in ("cpuset.cpus", "cpuset.mems"):
            if (d / f).exists() and not c.read(d / f) and (d.parent / f).exists():
                c.write(d / f, c.read(d.parent / f))

    def update(self, cid: str, resources: Resources) -> None:
        self._need(cid)
        self._apply(cid, resources)

    def _apply(self, cid: str, r: Resources) -> None:
        mem = self._req(cid, "memory")
        self._apply_memory(mem, r)
        if r.memory_reservation is not None:
            c.write(mem / "memory.soft_limit_in_bytes", r.memory_reservation)
        swappiness = getattr(r, "memory_swappiness", None)  # a core older than this plugin has none
        if swappiness is not None:
            c.write(mem / "memory.swappiness", swappiness)
        cpu = self._req(cid, "cpu")
        if r.cpu_shares is not None:
            c.write(cpu / "cpu.shares", r.cpu_shares)
        quota, period = r.cfs()
        if period is not None:
            c.write(cpu / "cpu.cfs_period_us", period)
        if quota is not None:
            c.write(cpu / "cpu.cfs_quota_us", quota if quota > 0 else -1)
        cpuset = self._dir(cid, "cpuset")
        for value, f in ((r.cpuset_cpus, "cpuset.cpus"), (r.cpuset_mems, "cpuset.mems")):
            if value is not None:
                if cpuset is None:
                    raise NotSupported("the cpuset cgroup controller is not mounted")
                c.write(cpuset / f, value)
        if r.pids_limit is not None:
            c.write(self._req(cid, "pids") / "pids.max", r.pids_limit if r.pids_limit > 0 else "max")
        if r.blkio_weight is not None:
            self._apply_blkio_weight(self._dir(cid, "blkio"), r.blkio_weight)
        if r.devices is not None:
            self._apply_devices(self._dir(cid, "devices"), r.devices)

    @staticmethod
    def _apply_devices(d: Path | None, rules: list[DeviceRule]) -> None:
        """Write the rules in order (the container's cgroup is new and empty: "a" in
        devices.deny resets it to deny-all, which needs a cgroup without children)."""
        if d is None:
            raise NotSupported("the devices cgroup controller is not mounted")
        i = 0
        while i < len(rules):  # each run of allow (or deny) rules through one fd
            j = i
            while j < len(rules) and rules[j].allow == rules[i].allow:
                j += 1
            c.write_each(d / ("devices.allow" if rules[i].allow else "devices.deny"), [str(r) for r in rules[i:j]])
            i = j

    def _apply_memory(self, mem: Path, r: Resources) -> None:
        """memory.limit_in_bytes and memory.memsw.limit_in_bytes, in the order the kernel
        accepts (memsw must never be below the memory limit)."""
        swap = r.memory_swap
        memsw = mem / "memory.memsw.limit_in_bytes"
        if swap is not None and not memsw.exists():
            log.warning("swap accounting is off: memory limited without swap limit")
            swap = None
        if r.memory is None and swap is None:
            return
        writes = []
        if r.memory is not None:
            writes.append((mem / "memory.limit_in_bytes", r.memory))
        if swap is not None:
            new = -1 if swap == -1 else swap
            current = c.read_int(memsw)
            swap_first = new == -1 or new > current
            writes.insert(0 if swap_first else len(writes), (memsw, new))
        for path, value in writes:
            c.write(path, value)

    @staticmethod
    def _apply_blkio_weight(blkio: Path | None, weight: int) -> None:
        for f in ("blkio.weight", "blkio.bfq.weight"):
            if blkio is not None and (blkio / f).exists():
                c.write(blkio / f, weight)
                return
        log.warning("kernel does not support Block I/O weight: BlkioWeight %s discarded", weight)

    def procs_files(self, cid: str) -> list[str]:
        self._need(cid)
        return [str(d / "cgroup.procs") for d in self._dirs(cid)]

    def attach(self, cid: str, pid: int) -> None:
        for f in self.procs_files(cid):
            c.write(Path(f), pid)

    def pids(self, cid: str) -> list[int]:
        self._need(cid)
        return c.procs(self._req(cid, "memory") / "cgroup.procs")

    # -- freeze / kill ------------------------------------------------------------------
    def _freezer(self, cid: str) -> Path:
        self._need(cid)
        d = self._dir(cid, "freezer")
        if d is None:
            raise NotSupported("the freezer cgroup controller is not mounted")
        return d

    def freeze(self, cid: str, timeout: float = 10.0) -> None:
        state = self._freezer(cid) / "freezer.state"

        def frozen() -> bool:
            if c.read(state) == "FROZEN":
                return True
            c.write(state, "FROZEN")  # re-kick: FREEZING can stall on a forking task
            return False

        c.write(state, "FROZEN")
        c.wait_for(frozen, timeout, f"container {cid} to freeze")

    def thaw(self, cid: str, timeout: float = 10.0) -> None:
        state = self._freezer(cid) / "freezer.state"
        c.write(state, "THAWED")
        c.wait_for(lambda: c.read(state) == "THAWED", timeout, f"container {cid} to thaw")

    def _thaw_if_frozen(self, cid: str) -> None:
        d = self._dir(cid, "freezer")
        if d is not None and c.read(d / "freezer.state") != "THAWED":
            self.thaw(cid)

    def kill_all(self, cid: str, sig: int = signal.SIGKILL) -> None:
        self._need(cid)
        leaf = self._tracking(cid)
        if sig == signal.SIGKILL and leaf is not None and (leaf / "cgroup.kill").exists():
            in_v2 = set(c.procs(leaf / "cgroup.procs"))
            c.write(leaf / "cgroup.kill", 1)
            if not set(self.pids(cid)) - in_v2:
                self._thaw_if_frozen(cid)  # frozen v1 tasks die only once thawed
                return
        self.freeze(cid)
        try:
            c.signal_all(self.pids(cid), sig)
        finally:
            self.thaw(cid)

    # -- accounting ---------------------------------------------------------------------
    def oom_kills(self, cid: str) -> int:
        self._need(cid)
        return c.read_kv(self._req(cid, "memory") / "memory.oom_control").get("oom_kill", 0)

    def oom_fd(self, cid: str) -> int | None:
        """An eventfd registered on memory.oom_control through cgroup.event_control."""
        self._need(cid)
        mem = self._req(cid, "memory")
        efd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        cfd = os.open(mem / "memory.oom_control", os.O_RDONLY | os.O_CLOEXEC)
        try:
            c.write(mem / "cgroup.event_control", f"{efd} {cfd}")
        except BaseException:
            os.close(efd)
            raise
        finally:
            os.close(cfd)
        return efd

    def stats(self, cid: str) -> dict[str, Any]:
        self._need(cid)
        mem = self._req(cid, "memory")
        limit = c.read_int(mem / "memory.limit_in_bytes")
        host = c.machine_memory()
        memory_stats = {
            "usage": c.read_int(mem / "memory.usage_in_bytes"),
            "max_usage": c.read_int(mem / "memory.max_usage_in_bytes"),
            "failcnt": c.read_int(mem / "memory.failcnt"),
            "limit": min(limit, host) if host else limit,
            "stats": c.read_kv(mem / "memory.stat"),
        }
        acct = self._req(cid, "cpuacct")
        times = c.read_kv(acct / "cpuacct.stat")
        try:
            percpu = [int(x) for x in (acct / "cpuacct.usage_percpu").read_text().split()]
        except OSError:
            percpu = []
        cpu_stat = c.read_kv(self._req(cid, "cpu") / "cpu.stat")
        cpu_stats = {
            "cpu_usage": {
                "total_usage": c.read_int(acct / "cpuacct.usage"),
                "percpu_usage": percpu,
                "usage_in_kernelmode": c.ticks_to_ns(times.get("system", 0)),
                "usage_in_usermode": c.ticks_to_ns(times.get("user", 0)),
            },
            "system_cpu_usage": c.system_cpu_usage(),
            "online_cpus": c.online_cpus(),
            "throttling_data": {
                "periods": cpu_stat.get("nr_periods", 0),
                "throttled_periods": cpu_stat.get("nr_throttled", 0),
                "throttled_time": cpu_stat.get("throttled_time", 0),
            },
        }
        pids_dir = self._req(cid, "pids")
        pids_stats: dict[str, int] = {"current": c.read_int(pids_dir / "pids.current")}
        if c.read(pids_dir / "pids.max") != "max":
            pids_stats["limit"] = c.read_int(pids_dir / "pids.max")
        return {"memory_stats": memory_stats, "cpu_stats": cpu_stats, "pids_stats": pids_stats,
                "blkio_stats": self._blkio(self._dir(cid, "blkio"))}

    @staticmethod
    def _blkio(d: Path | None) -> dict[str, Any]:
        out = c.empty_blkio()
        if d is None:
            return out
        for key, names in (("io_service_bytes_recursive", ("blkio.io_service_bytes_recursive",
                                                           "blkio.throttle.io_service_bytes_recursive")),
                           ("io_serviced_recursive", ("blkio.io_serviced_recursive",
                                                      "blkio.throttle.io_serviced_recursive"))):
            for name in names:
                rows = []
                try:
                    text = (d / name).read_text()
                except OSError:
                    continue
                for line in text.splitlines():
                    parts = line.split()
                    if len(parts) == 3 and ":" in parts[0]:
                        major, minor = parts[0].split(":")
                        rows.append((int(major), int(minor), parts[1], int(parts[2])))
                if rows:
                    out[key] = c.blkio_entries(rows)
                    break
        return out

    # -- removal and inventory ----------------------------------------------------------
    def remove(self, cid: str, timeout: float = 5.0) -> None:
        c.check_cid(cid)

        def kill() -> None:
            if self.exists(cid) and self._req(cid, "memory").is_dir():
                self.kill_all(cid)

        key = (cid, self._parent(cid))
        c.rmdir_all(self._dirs(cid), timeout, kill)
        self._release(cid)
        self._paths.pop(key, None)

    def list(self) -> list[str]:
        ids: set[str] = set()
        with self.parents.lock:
            skip = self.parents.ancestors()
            for b in self._bases():
                try:
                    ids.update(p.name for p in (b / self.parent).iterdir()
                               if p.is_dir() and f"{self.parent}/{p.name}" not in skip)
                except FileNotFoundError:
                    pass
            ids.update(cid for cid in self.parents.of if self.exists(cid))
        return sorted(ids)

    def exists(self, cid: str) -> bool:
        c.check_cid(cid)
        return any(os.path.isdir(d) for d in self._dirs(cid))

    def remove_parent(self) -> None:
        bases = self._bases()
        self._parent_made.clear()
        with self.parents.lock:
            for key in sorted(self.parents.created, key=lambda k: -k.count("/")):
                base, _, rel = key.partition("\0")
                self.parents.release(Path(base), rel)
        parts = self.parent.split("/")
        for b in bases:
            for i in range(len(parts), 0, -1):
                try:
                    (b / "/".join(parts[:i])).rmdir()
                except FileNotFoundError:
                    continue
                except OSError as e:
                    c.log.warning("cannot remove %s: %s", b / "/".join(parts[:i]), e.strerror)
                    break
        # an OCI runtime (runc) makes the parent in named hierarchies too (name=systemd) and
        # removes only its containers' leaves: the now empty parent goes with ours (rmdir never
        # removes a directory that still holds a cgroup or a process)
        for root in self.layout.named.values():
            for i in range(len(parts), 0, -1):
                try:
                    Path(root, *parts[:i]).rmdir()
                except FileNotFoundError:
                    continue
                except OSError:
                    break
