"""Which runtime runs each container: the default one, or another installed runtime driver
that serves the ``HostConfig.Runtime`` name (``--runtime runc``: the ``oci`` plugin).

:class:`RuntimeSet` stands where the single runtime driver stood (``daemon.drivers["runtime"]``):
``start`` routes by ``spec.runtime``; every other call (``kill(cid, ...)``, ``exec(cid, ...)``,
...) goes to the runtime that has the container's state, so containers of either kind
started by an earlier daemon are found again (live-restore).
"""

from __future__ import annotations

from typing import Any

from ..drivers.runtime import ContainerSpec


class RuntimeSet:
    """The default runtime plus ``extras``: drivers with ``names()`` (the ``--runtime`` names
    they serve), ``path_of(name)`` (the binary docker info shows) and ``owns(cid)``."""

    def __init__(self, default: Any, extras: list[Any]) -> None:
        self.default = default
        self.name = default.name
        self.extras = list(extras)
        self._by_name = {n: d for d in self.extras for n in d.names() if n not in (self.name, d.name)}
        self._owner: dict[str, Any] = {}

    def names(self) -> list[str]:
        return [self.name, *self._by_name]

    def path_of(self, name: str) -> str | None:
        d = self._by_name.get(name)
        return d.path_of(name) if d is not None else type(self.default).__module__

    def runtime_of(self, cid: str) -> Any:
        d = self._owner.get(cid)
        if d is not None:
            return d
        for e in self.extras:
            if e.owns(cid):
                self._owner[cid] = e
                return e
        return self.default

    async def start(self, spec: ContainerSpec) -> int:
        d = self._by_name.get(spec.runtime, self.default)
        if d is not self.default:
            self._owner[spec.id] = d
        else:
            self._owner.pop(spec.id, None)
        return await d.start(spec)

    def list(self) -> list[str]:
        return sorted({*self.default.list(), *(c for e in self.extras for c in e.list())})

    async def delete(self, cid: str, *args: Any, **kw: Any) -> None:
        try:
            await self.runtime_of(cid).delete(cid, *args, **kw)
        finally:
            if not args and not kw:
                self._owner.pop(cid, None)

    def __getattr__(self, attr: str) -> Any:
        # optional methods exist when the default runtime has them (the oci driver has them all)
        value = getattr(self.default, attr)
        if not callable(value):
            return value

        def call(cid: str, *args: Any, **kw: Any) -> Any:
            return getattr(self.runtime_of(cid), attr)(cid, *args, **kw)

        call.__name__ = attr
        return call
