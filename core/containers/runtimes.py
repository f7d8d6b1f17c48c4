"""Which runtime runs each container: the default one, or another installed runtime driver
that serves the ``HostConfig.Runtime`` name (``--runtime runc``: the ``oci`` plugin).

:class:`RuntimeSet` is what core calls (``daemon.drivers["runtime"]``), also with one runtime:
``start`` routes by ``spec.runtime``; every other call (``kill(cid, ...)``, ``exec(cid, ...)``,
...) goes to the runtime that has the container's state, so containers of either kind
started by an earlier daemon are found again (live-restore). What a container's runtime can
do is its load-time contract record (:meth:`RuntimeSet.record`); a call that needs a
capability the runtime lacks raises :class:`~dockyard.drivers.contracts.UnsupportedCapability`
(400 naming the runtime) instead of doing nothing.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Iterable, Literal

from ..drivers import contracts
from ..drivers.contracts import DriverRecord
from ..drivers.runtime import ContainerSpec, ExecSpec, ExitStatus, LogReader

#: what each capability is for, in the 400 of a runtime without it
WHAT = {
    "exec": "exec (docker exec)",
    "tty": "resizing a TTY",
    "stdin": "attaching stdin",
    "stdin-detach": "detaching stdin",
    "exec-stdin-detach": "detaching an exec's stdin",
}


class RuntimeSet:
    """The default runtime plus ``extras``: drivers with the ``runtime-names`` capability
    (:class:`~dockyard.drivers.runtime.MultiRuntime`: ``names()``, ``path_of(name)``,
    ``owns(cid)``)."""

    def __init__(self, default: Any, extras: Iterable[Any] = (), name: str | None = None) -> None:
        extras = list(extras)
        self.default = default
        #: the default ``HostConfig.Runtime``: the default driver's name, or a name it serves (runc)
        self.name: str = name or default.name
        self.records: dict[int, DriverRecord] = {id(d): contracts.record("runtime", d) for d in (default, *extras)}
        self.extras = [d for d in extras if self.records[id(d)].has("runtime-names")]
        self._by_name = {n: d for d in self.extras for n in d.names()
                         if n not in (self.name, default.name, d.name)}
        self._owner: dict[str, Any] = {}

    # -- which runtime ------------------------------------------------------------------------
    def names(self) -> list[str]:
        """The ``HostConfig.Runtime`` names accepted: the default's (all it serves) and the extras'."""
        own = self.default.names() if self.records[id(self.default)].has("runtime-names") else [self.name]
        return list(dict.fromkeys([*own, *self._by_name]))

    def path_of(self, name: str) -> str:
        """What ``docker info`` shows as a runtime's path: its binary when it runs one."""
        d = self._by_name.get(name, self.default)
        path = d.path_of(name) if self.records[id(d)].has("runtime-names") else None
        return path or type(d).__module__

    def runtime_of(self, cid: str) -> Any:
        d = self._owner.get(cid)
        if d is not None:
            return d
        for e in self.extras:
            if e.owns(cid):
                self._owner[cid] = e
                return e
        if self.extras:  # remembered: no state-dir lookups on every later call
            self._owner[cid] = self.default
        return self.default

    def record(self, cid: str) -> DriverRecord:
        """The contract record of the runtime that runs ``cid``."""
        return self.records[id(self.runtime_of(cid))]

    def require(self, cid: str, capability: str) -> Any:
        """The runtime of ``cid`` when it has ``capability``; else a 400 naming the runtime."""
        d = self.runtime_of(cid)
        self.records[id(d)].require(capability, WHAT.get(capability, capability))
        return d

    def has(self, cid: str, capability: str) -> bool:
        return self.record(cid).has(capability)

    # -- the base contract ----------------------------------------------------------------------
    async def start(self, spec: ContainerSpec) -> int:
        d = self._by_name.get(spec.runtime, self.default)
        self._owner[spec.id] = d
        return await d.start(spec)

    def list(self) -> list[str]:
        return sorted({*self.default.list(), *(c for e in self.extras for c in e.list())})

    async def delete(self, cid: str, logs: bool = True) -> None:
        try:
            await self.runtime_of(cid).delete(cid, logs=logs)
        finally:
            if logs:
                self._owner.pop(cid, None)

    async def wait(self, cid: str) -> ExitStatus:
        return await self.runtime_of(cid).wait(cid)

    async def kill(self, cid: str, sig: int) -> None:
        await self.runtime_of(cid).kill(cid, sig)

    def state(self, cid: str) -> Literal["running", "exited", "unknown"]:
        return self.runtime_of(cid).state(cid)

    def exit_status(self, cid: str) -> ExitStatus | None:
        return self.runtime_of(cid).exit_status(cid)

    def pid(self, cid: str) -> int | None:
        return self.runtime_of(cid).pid(cid)

    def logs(self, cid: str) -> LogReader:
        return self.runtime_of(cid).logs(cid)

    # -- capabilities: each call checks the container's runtime has it ---------------------------
    def resize(self, cid: str, height: int, width: int) -> None:
        self.require(cid, "tty").resize(cid, height, width)

    def stdin_path(self, cid: str) -> Path:
        return self.require(cid, "stdin").stdin_path(cid)

    def stdin_detach(self, cid: str) -> None:
        """Detach keys typed: a no-op for a runtime that cannot tell (the close is then EOF)."""
        d = self.runtime_of(cid)
        if self.records[id(d)].has("stdin-detach"):
            d.stdin_detach(cid)

    async def exec(self, cid: str, spec: ExecSpec) -> int:
        return await self.require(cid, "exec").exec(cid, spec)

    async def exec_wait(self, cid: str, eid: str) -> ExitStatus:
        return await self.require(cid, "exec").exec_wait(cid, eid)

    async def exec_kill(self, cid: str, eid: str, sig: int) -> None:
        await self.require(cid, "exec").exec_kill(cid, eid, sig)

    def exec_logs(self, cid: str, eid: str) -> LogReader:
        return self.require(cid, "exec").exec_logs(cid, eid)

    def exec_stdin_path(self, cid: str, eid: str) -> Path:
        return self.require(cid, "exec").exec_stdin_path(cid, eid)

    def exec_resize(self, cid: str, eid: str, height: int, width: int) -> None:
        self.require(cid, "exec").exec_resize(cid, eid, height, width)

    async def exec_delete(self, cid: str, eid: str) -> None:
        await self.require(cid, "exec").exec_delete(cid, eid)

    def exec_stdin_detach(self, cid: str, eid: str) -> None:
        """Detach keys typed in an exec: a no-op for a runtime that cannot tell."""
        d = self.runtime_of(cid)
        if self.records[id(d)].has("exec-stdin-detach"):
            d.exec_stdin_detach(cid, eid)

    async def close(self) -> None:
        """Daemon shutdown: close the runtimes that have ``close``."""
        for d in (self.default, *self.extras):
            if self.records[id(d)].has("close"):
                result = d.close()
                if inspect.isawaitable(result):
                    await result
