"""FakeCgroups: an in-memory cgroup driver (entry point ``fake`` in ``dockyard.cgroups``).

For API tests without root: it keeps per-container state in memory, records every call in
``calls`` as ``(method, cid, *args)``, and never touches the kernel nor signals a process.
``procs_files`` points at real (empty) files under ``state`` so a fake runtime can write a
pid there; :meth:`pids` reads them back. :meth:`simulate_oom` bumps the OOM counter.
"""

from __future__ import annotations

import os
import posixpath
import re
import signal
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from dockyard.drivers.cgroups import Resources
from dockyard.errors import ConfigError, Conflict, InvalidArgument, NotFound

_CID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_HOST_MEMORY = 8 * 1024**3


@dataclass
class FakeCgroup:
    resources: Resources
    pids: set[int] = field(default_factory=set)
    frozen: bool = False
    oom_kills: int = 0
    parent: str | None = None


class FakeCgroups:
    name = "fake"
    version = 2
    driver = "cgroupfs"
    #: optional contracts (dockyard.drivers.contracts): none beyond the base Protocol
    capabilities: frozenset[str] = frozenset()

    @classmethod
    def check(cls) -> None:
        """Always available."""

    def __init__(self, config: dict | None = None, root: Path | None = None,
                 state: Path | None = None) -> None:
        config = dict(config or {})
        unknown = set(config) - {"parent"}
        if unknown:
            raise ConfigError(f"cgroups: unknown option(s): {', '.join(sorted(unknown))}")
        self.parent = str(config.get("parent", "dockyard"))
        self.state = Path(state) if state else None
        self.groups: dict[str, FakeCgroup] = {}
        self.calls: list[tuple[Any, ...]] = []

    def _get(self, cid: str) -> FakeCgroup:
        if not isinstance(cid, str) or not _CID.match(cid):
            raise InvalidArgument(f"invalid container id for a cgroup: {cid!r}")
        try:
            return self.groups[cid]
        except KeyError:
            raise NotFound(f"no cgroup for container {cid}") from None

    def _procs_path(self, cid: str) -> Path | None:
        g = self.groups.get(cid)
        parent = self.parent if g is None or g.parent is None else g.parent
        return Path(self.state, parent, cid, "cgroup.procs") if self.state else None

    def create(self, cid: str, resources: Resources, parent: str | None = None) -> None:
        self.calls.append(("create", cid, resources))
        if not _CID.match(cid or ""):
            raise InvalidArgument(f"invalid container id for a cgroup: {cid!r}")
        if cid in self.groups:
            raise Conflict(f"cgroup for container {cid} already exists")
        self.groups[cid] = FakeCgroup(replace(resources),
                                      parent=None if parent is None else posixpath.normpath("/" + parent).strip("/"))
        p = self._procs_path(cid)
        if p:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.touch()

    def path(self, cid: str) -> str:
        g = self._get(cid)
        return "/" + "/".join(x for x in (self.parent if g.parent is None else g.parent, cid) if x)

    def adopt(self, cid: str, parent: str | None) -> None:
        if cid in self.groups:
            self.groups[cid].parent = None if parent is None else posixpath.normpath("/" + parent).strip("/")

    def procs_files(self, cid: str) -> list[str]:
        self._get(cid)
        p = self._procs_path(cid)
        return [str(p)] if p else []

    def attach(self, cid: str, pid: int) -> None:
        self.calls.append(("attach", cid, pid))
        self._get(cid).pids.add(pid)

    def update(self, cid: str, resources: Resources) -> None:
        self.calls.append(("update", cid, resources))
        g = self._get(cid)
        for k, v in vars(resources).items():
            if v is not None:
                setattr(g.resources, k, v)

    def pids(self, cid: str) -> list[int]:
        g = self._get(cid)
        found = set(g.pids)
        p = self._procs_path(cid)
        if p and p.exists():
            found.update(int(x) for x in p.read_text().split())
        return sorted(found)

    def stats(self, cid: str) -> dict[str, Any]:
        g = self._get(cid)
        r = g.resources
        pids = {"current": len(self.pids(cid))}
        if r.pids_limit and r.pids_limit > 0:
            pids["limit"] = r.pids_limit
        return {
            "memory_stats": {"usage": 0, "max_usage": 0, "failcnt": 0,
                             "limit": r.memory or _HOST_MEMORY, "stats": {}},
            "cpu_stats": {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
                          "system_cpu_usage": 0, "online_cpus": os.cpu_count() or 1,
                          "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}},
            "pids_stats": pids,
            "blkio_stats": {"io_service_bytes_recursive": None, "io_serviced_recursive": None},
        }

    def freeze(self, cid: str) -> None:
        self.calls.append(("freeze", cid))
        self._get(cid).frozen = True

    def thaw(self, cid: str) -> None:
        self.calls.append(("thaw", cid))
        self._get(cid).frozen = False

    def kill_all(self, cid: str, sig: int = signal.SIGKILL) -> None:
        self.calls.append(("kill_all", cid, sig))
        self._get(cid)

    def oom_kills(self, cid: str) -> int:
        return self._get(cid).oom_kills

    def oom_fd(self, cid: str) -> int | None:
        self._get(cid)
        return None

    def simulate_oom(self, cid: str) -> None:
        """Test helper: count one OOM kill."""
        self._get(cid).oom_kills += 1

    def remove(self, cid: str, timeout: float = 5.0) -> None:
        self.calls.append(("remove", cid))
        if not _CID.match(cid or ""):
            raise InvalidArgument(f"invalid container id for a cgroup: {cid!r}")
        p = self._procs_path(cid)
        self.groups.pop(cid, None)
        if p and p.exists():
            p.unlink()
            p.parent.rmdir()

    def list(self) -> list[str]:
        return sorted(self.groups)

    def exists(self, cid: str) -> bool:
        return cid in self.groups

    def remove_parent(self) -> None:
        if self.state and (self.state / self.parent).is_dir():
            try:
                (self.state / self.parent).rmdir()
            except OSError:
                pass
