"""The ``auto`` driver: looks at the host and delegates to the v1 or the v2 backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dockyard.drivers.cgroups import CgroupDriver
from dockyard.drivers.contracts import protocol_members
from dockyard.errors import SkipPlugin

from .detect import Layout, host_layout
from .v1 import CgroupV1
from .v2 import CgroupV2


def pick(layout: Layout) -> type[CgroupV1] | type[CgroupV2]:
    """v1 when the memory controller is on a v1 mount (v1 and hybrid hosts), else v2."""
    version = layout.memory_version()
    if version == 1:
        return CgroupV1
    if version == 2:
        return CgroupV2
    raise SkipPlugin(f"no memory cgroup controller found (layout: {layout.mode})")


class AutoCgroups:
    """Delegates every :class:`dockyard.drivers.CgroupDriver` method to the picked backend;
    ``name`` and ``version`` tell which one."""

    driver = "cgroupfs"
    name: str = "auto"  # until __init__ picked the backend
    version: int = 0
    #: optional contracts (dockyard.drivers.contracts): none beyond the base Protocol
    capabilities: frozenset[str] = frozenset()

    @classmethod
    def check(cls) -> None:
        layout = host_layout()
        pick(layout).check(layout)

    def __init__(self, config: dict | None = None, root: Path | None = None, state: Path | None = None,
                 *, layout: Layout | None = None) -> None:
        layout = layout or host_layout()
        self.impl = pick(layout)(config, root, state, layout=layout)
        self.name = self.impl.name
        self.version = self.impl.version

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.impl, attr)


def _delegate(method: str) -> Any:
    def call(self: AutoCgroups, *args: Any, **kw: Any) -> Any:
        return getattr(self.impl, method)(*args, **kw)

    call.__name__ = call.__qualname__ = method
    return call


# the contract's methods are real methods here (the load-time contract check sees them)
for _method in protocol_members(CgroupDriver):
    if _method not in ("name", "version", "driver"):
        setattr(AutoCgroups, _method, _delegate(_method))
