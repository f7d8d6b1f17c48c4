"""cgroup v2 backend: one leaf per container in the unified hierarchy.

Controllers are enabled in ``cgroup.subtree_control`` of every ancestor down to the parent
(which holds no processes: the no-internal-process rule). Freeze uses ``cgroup.freeze`` and
waits for ``cgroup.events`` ``frozen 1``; kill-all uses ``cgroup.kill``.
"""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from typing import Any

from dockyard.drivers.cgroups import ALLOW_ALL_DEVICES, DeviceRule, Resources
from dockyard.errors import Conflict, SkipPlugin

from . import common as c
from . import devicefilter
from .detect import Layout, host_layout

log = logging.getLogger("dockyard.cgroups.v2")
CONTROLLERS = ("cpuset", "cpu", "io", "memory", "pids")


def shares_to_weight(shares: int) -> int:
    """cpu.shares (2..262144) -> cpu.weight (1..10000), runc's linear formula; 0 stays 0 (unset)."""
    if shares == 0:
        return 0
    return 1 + ((shares - 2) * 9999) // 262142


def blkio_to_io_weight(weight: int) -> int:
    """blkio.weight (10..1000) -> io.weight (1..10000), as runc converts it."""
    return 1 + ((weight - 10) * 9999) // 990


class CgroupV2:
    """The ``v2`` driver (see :class:`dockyard.drivers.CgroupDriver` for the contract)."""

    name = "v2"
    version = 2
    driver = "cgroupfs"
    #: optional contracts (dockyard.drivers.contracts): none beyond the base Protocol
    capabilities: frozenset[str] = frozenset()

    @classmethod
    def check(cls, layout: Layout | None = None) -> None:
        layout = layout or host_layout()
        if not layout.unified:
            raise SkipPlugin("no cgroup2 filesystem mounted")
        if layout.memory_version() != 2:
            raise SkipPlugin("the memory controller is not in the unified hierarchy "
                             f"(host is {layout.mode}); use the v1 driver")

    def __init__(self, config: dict | None = None, root: Path | None = None, state: Path | None = None,
                 *, layout: Layout | None = None) -> None:
        """Needs a cgroup2 mount. Construction does not call :meth:`check`: on a hybrid host
        the controller-less tree still gives freeze, kill-all, pids and CPU usage; limits
        then raise NotSupported."""
        self.parent = c.parse_config(config)
        self.layout = layout or host_layout()
        if not self.layout.unified:
            raise SkipPlugin("no cgroup2 filesystem mounted")
        self.root = Path(self.layout.unified)
        self.parents = c.Parents(state)

    def _parent(self, cid: str) -> str:
        return self.parents.of.get(cid, self.parent)

    def _dir(self, cid: str) -> Path:
        c.check_cid(cid)
        return Path(self.root, self._parent(cid), cid)

    def path(self, cid: str) -> str:
        """The container's cgroup path as /proc/<pid>/cgroup shows it (``/<parent>/<cid>``)."""
        c.check_cid(cid)
        return "/" + "/".join(x for x in (self._parent(cid), cid) if x)

    def adopt(self, cid: str, parent: str | None) -> None:
        """Tell the driver the parent of an existing container's cgroup (daemon restart)."""
        c.check_cid(cid)
        self.parents.set(cid, None if parent is None else c.normalize_parent(parent))

    def _need(self, cid: str) -> Path:
        d = self._dir(cid)
        c.require(d, cid)
        return d

    # -- lifecycle -------------------------------------------------------------------
    def _ensure_parent(self, rel: str | None = None) -> None:
        """mkdir -p the parent and enable the controllers in cgroup.subtree_control of every
        directory from the root down to it (the leaf's own controllers come from there)."""
        if rel is None:
            rel = self.parent
            c.mkdirs(self.root, rel)
        else:
            self.parents.mkdirs(self.root, rel)
        d = self.root
        for part in [""] + [p for p in rel.split("/") if p]:
            d = d / part if part else d
            available = set(c.read(d / "cgroup.controllers").split())
            enabled = set(c.read(d / "cgroup.subtree_control").split())
            for ctl in CONTROLLERS:
                if ctl in available and ctl not in enabled:
                    try:
                        c.write(d / "cgroup.subtree_control", f"+{ctl}")
                    except c.DockyardError as e:
                        log.warning("cannot enable %s in %s: %s", ctl, d, e)

    def create(self, cid: str, resources: Resources, parent: str | None = None) -> None:
        c.check_cid(cid)
        rel = None if parent is None else c.normalize_parent(parent)
        with self.parents.lock:
            if self._dir(cid).exists():
                raise Conflict(f"cgroup for container {cid} already exists")
            self.parents.set(cid, rel)
            d = self._dir(cid)
            made = False
            try:
                self._ensure_parent(rel)
                d.mkdir()
                made = True
                self._apply(d, resources)
            except BaseException:
                if made:
                    d.rmdir()
                self._release(cid)
                raise

    def _release(self, cid: str) -> None:
        """Forget the container's parent; remove the ancestors this driver created for it
        that nothing else uses any more."""
        with self.parents.lock:
            rel = self.parents.of.get(cid)
            if rel is None:
                return
            self.parents.set(cid, None)
            if rel not in self.parents.of.values():
                self.parents.release(self.root, rel)

    def update(self, cid: str, resources: Resources) -> None:
        self._apply(self._need(cid), resources)

    def _apply(self, d: Path, r: Resources) -> None:
        if r.devices is not None:
            self._apply_devices(d, r.devices)
        if r.memory is not None:
            c.write(d / "memory.max", r.memory if r.memory > 0 else "max")
        if r.memory_swap is not None:
            if not (d / "memory.swap.max").exists() and (d / "memory.max").exists():
                log.warning("swap accounting is off: memory limited without swap limit")
            else:
                mem = r.memory if r.memory is not None else c.read_int(d / "memory.max", -1)
                unlimited = r.memory_swap == -1 or mem <= 0
                c.write(d / "memory.swap.max", "max" if unlimited else max(0, r.memory_swap - mem))
        if r.memory_reservation is not None:
            c.write(d / "memory.low", r.memory_reservation)
        quota, period = r.cfs()
        if quota is not None or period is not None:
            try:
                cur_quota, cur_period = c.read(d / "cpu.max").split()
            except OSError:
                cur_quota, cur_period = "max", "100000"
            q = cur_quota if quota is None else (quota if quota > 0 else "max")
            c.write(d / "cpu.max", f"{q} {period or cur_period}")
        if r.cpu_shares is not None:
            c.write(d / "cpu.weight", shares_to_weight(r.cpu_shares) or 100)
        if r.cpuset_cpus is not None:
            c.write(d / "cpuset.cpus", r.cpuset_cpus)
        if r.cpuset_mems is not None:
            c.write(d / "cpuset.mems", r.cpuset_mems)
        if r.pids_limit is not None:
            c.write(d / "pids.max", r.pids_limit if r.pids_limit > 0 else "max")
        if r.blkio_weight is not None:
            if (d / "io.bfq.weight").exists():
                c.write(d / "io.bfq.weight", r.blkio_weight)
            elif (d / "io.weight").exists():
                c.write(d / "io.weight", f"default {blkio_to_io_weight(r.blkio_weight)}")
            else:
                log.warning("kernel does not support Block I/O weight: BlkioWeight discarded")

    @staticmethod
    def _apply_devices(d: Path, rules: list[DeviceRule]) -> None:
        """cgroup v2 filters devices with an eBPF program (see devicefilter); "allow all"
        (privileged) needs none."""
        if tuple(rules) != ALLOW_ALL_DEVICES:
            devicefilter.attach(str(d), rules)

    def procs_files(self, cid: str) -> list[str]:
        return [str(self._need(cid) / "cgroup.procs")]

    def attach(self, cid: str, pid: int) -> None:
        c.write(self._need(cid) / "cgroup.procs", pid)

    def pids(self, cid: str) -> list[int]:
        return c.procs(self._need(cid) / "cgroup.procs")

    # -- freeze / kill ------------------------------------------------------------------
    def _frozen(self, d: Path) -> bool:
        return c.read_kv(d / "cgroup.events").get("frozen") == 1

    def freeze(self, cid: str, timeout: float = 10.0) -> None:
        d = self._need(cid)
        c.write(d / "cgroup.freeze", 1)
        c.wait_for(lambda: self._frozen(d), timeout, f"container {cid} to freeze")

    def thaw(self, cid: str, timeout: float = 10.0) -> None:
        d = self._need(cid)
        c.write(d / "cgroup.freeze", 0)
        c.wait_for(lambda: not self._frozen(d), timeout, f"container {cid} to thaw")

    def kill_all(self, cid: str, sig: int = signal.SIGKILL) -> None:
        d = self._need(cid)
        if sig == signal.SIGKILL and (d / "cgroup.kill").exists():
            c.write(d / "cgroup.kill", 1)
            return
        self.freeze(cid)
        try:
            c.signal_all(self.pids(cid), sig)
        finally:
            self.thaw(cid)

    # -- accounting ---------------------------------------------------------------------
    def oom_kills(self, cid: str) -> int:
        return c.read_kv(self._need(cid) / "memory.events").get("oom_kill", 0)

    def oom_fd(self, cid: str) -> int | None:
        """None: the daemon checks :meth:`oom_kills` when the container exits."""
        self._need(cid)
        return None

    def stats(self, cid: str) -> dict[str, Any]:
        d = self._need(cid)
        memory_stats: dict[str, Any] = {}
        if (d / "memory.current").exists():
            host = c.machine_memory()
            limit = c.read_int(d / "memory.max", host)
            memory_stats = {"usage": c.read_int(d / "memory.current"),
                            "limit": min(limit, host) if host else limit,
                            "stats": c.read_kv(d / "memory.stat")}
        st = c.read_kv(d / "cpu.stat")
        cpu_stats = {
            "cpu_usage": {
                "total_usage": st.get("usage_usec", 0) * 1000,
                "usage_in_kernelmode": st.get("system_usec", 0) * 1000,
                "usage_in_usermode": st.get("user_usec", 0) * 1000,
            },
            "system_cpu_usage": c.system_cpu_usage(),
            "online_cpus": c.online_cpus(),
            "throttling_data": {
                "periods": st.get("nr_periods", 0),
                "throttled_periods": st.get("nr_throttled", 0),
                "throttled_time": st.get("throttled_usec", 0) * 1000,
            },
        }
        if (d / "pids.current").exists():
            pids_stats: dict[str, int] = {"current": c.read_int(d / "pids.current")}
            if c.read(d / "pids.max") != "max":
                pids_stats["limit"] = c.read_int(d / "pids.max")
        else:
            pids_stats = {"current": len(c.procs(d / "cgroup.procs"))}
        return {"memory_stats": memory_stats, "cpu_stats": cpu_stats, "pids_stats": pids_stats,
                "blkio_stats": self._blkio(d)}

    @staticmethod
    def _blkio(d: Path) -> dict[str, Any]:
        out = c.empty_blkio()
        try:
            text = (d / "io.stat").read_text()
        except OSError:
            return out
        served, bytes_ = [], []
        for line in text.splitlines():
            dev, *kvs = line.split()
            major, minor = (int(x) for x in dev.split(":"))
            kv = dict(x.split("=", 1) for x in kvs if "=" in x)
            for op, key in (("read", "rbytes"), ("write", "wbytes")):
                bytes_.append((major, minor, op, int(kv.get(key, 0))))
            for op, key in (("read", "rios"), ("write", "wios")):
                served.append((major, minor, op, int(kv.get(key, 0))))
        out["io_service_bytes_recursive"] = c.blkio_entries(bytes_)
        out["io_serviced_recursive"] = c.blkio_entries(served)
        return out

    # -- removal and inventory ----------------------------------------------------------
    def remove(self, cid: str, timeout: float = 5.0) -> None:
        d = self._dir(cid)

        def kill() -> None:
            if d.is_dir():
                self.kill_all(cid)
                if self._frozen(d):
                    self.thaw(cid)

        c.rmdir_all([d], timeout, kill)
        self._release(cid)

    def list(self) -> list[str]:
        ids: set[str] = set()
        with self.parents.lock:
            skip = self.parents.ancestors()
            try:
                ids.update(p.name for p in (self.root / self.parent).iterdir()
                           if p.is_dir() and f"{self.parent}/{p.name}" not in skip)
            except FileNotFoundError:
                pass
            ids.update(cid for cid in self.parents.of if self.exists(cid))
        return sorted(ids)

    def exists(self, cid: str) -> bool:
        return self._dir(cid).is_dir()

    def remove_parent(self) -> None:
        with self.parents.lock:
            for key in sorted(self.parents.created, key=lambda k: -k.count("/")):
                base, _, rel = key.partition("\0")
                self.parents.release(Path(base), rel)
        parts = self.parent.split("/")
        for i in range(len(parts), 0, -1):
            p = self.root / "/".join(parts[:i])
            try:
                p.rmdir()
            except FileNotFoundError:
                continue
            except OSError as e:
                log.warning("cannot remove %s: %s", p, e.strerror)
                break
