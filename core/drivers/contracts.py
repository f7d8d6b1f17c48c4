"""Driver contracts as code: the base Protocol of each kind, its optional capabilities, and the
load-time check that turns a driver object into a typed :class:`DriverRecord`.

A driver says what it offers beyond its kind's base Protocol with a class attribute::

    class MyRuntime:
        name = "mine"
        capabilities = frozenset({"exec", "tty"})

Each name is one ``runtime_checkable`` Protocol of the kind (:data:`CONTRACTS`); a driver
without the attribute gets the capabilities its methods satisfy. :func:`check` runs once, when
the daemon loads the driver (:meth:`dockyard.plugins.Plugins.load_driver`): a missing base
method, an unknown capability name or a declared capability whose methods are missing is a
:class:`dockyard.errors.PluginError` naming the driver and the method, and the daemon does not
start. Core then asks the record (:func:`record`), never the driver's attributes; a request
that needs a capability the driver lacks is :class:`UnsupportedCapability` (400 naming it).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any, Mapping, Protocol, runtime_checkable

from ..errors import InvalidArgument, PluginError
from .cgroups import CgroupDriver
from .network import NETWORK_CAPABILITIES, NetworkDriver
from .runtime import RUNTIME_CAPABILITIES, Runtime
from .storage import STORAGE_CAPABILITIES, StorageDriver
from .transport import Transport
from .volume import VOLUME_CAPABILITIES, VolumeDriver


@runtime_checkable
class ClosableDriver(Protocol):
    """``close``: for kinds whose base contract has no ``close`` (runtime, cgroups): called
    once at daemon shutdown (may be a coroutine function)."""

    def close(self) -> Any: ...


@dataclass(frozen=True)
class Contract:
    kind: str
    base: type
    #: capability name -> Protocol; ``None`` is a promise no method shows (declared only)
    capabilities: Mapping[str, type | None]

    @property
    def members(self) -> tuple[str, ...]:
        return protocol_members(self.base)


CONTRACTS: dict[str, Contract] = {
    "runtime": Contract("runtime", Runtime, {**RUNTIME_CAPABILITIES, "close": ClosableDriver}),
    "storage": Contract("storage", StorageDriver, STORAGE_CAPABILITIES),
    "network": Contract("network", NetworkDriver, NETWORK_CAPABILITIES),
    "volume": Contract("volume", VolumeDriver, VOLUME_CAPABILITIES),
    "cgroups": Contract("cgroups", CgroupDriver, {"close": ClosableDriver}),
    "transport": Contract("transport", Transport, {}),
}


class UnsupportedCapability(InvalidArgument):
    """A request needs a capability the driver serving it does not have (400, naming it)."""


@dataclass(frozen=True)
class DriverRecord:
    """What the daemon knows about one loaded driver: checked once, read at call time."""

    kind: str
    name: str
    capabilities: frozenset[str]

    def has(self, capability: str) -> bool:
        return capability in self.capabilities

    def require(self, capability: str, what: str) -> None:
        """Raise :class:`UnsupportedCapability` ("runtime fake does not support <what>")."""
        if capability not in self.capabilities:
            raise UnsupportedCapability(f"{self.kind} {self.name} does not support {what}"
                                        f" (it lacks the {capability!r} capability)")


def protocol_members(proto: type) -> tuple[str, ...]:
    """The attributes and methods a Protocol asks for (own and inherited, no dunders)."""
    names: list[str] = []
    for klass in reversed(proto.__mro__):
        if klass in (object, Protocol) or klass.__module__ == "typing":
            continue
        for n in [*getattr(klass, "__annotations__", {}), *vars(klass)]:
            if n.startswith("_") or n in names:
                continue
            names.append(n)
    return tuple(names)


_ABSENT = object()


def _missing(obj: Any, proto: type) -> list[str]:
    # the one place that looks at a driver's attributes: once, when it loads
    return [m for m in protocol_members(proto) if getattr(obj, m, _ABSENT) is _ABSENT]


def declared(obj: Any) -> frozenset[str] | None:
    """A driver's ``capabilities`` declaration, or None when it has none."""
    value = getattr(obj, "capabilities", None)
    return frozenset(value) if value is not None else None


def satisfied(kind: str, driver: Any) -> frozenset[str]:
    """Capabilities whose Protocol the driver's methods satisfy (promises excluded)."""
    contract = CONTRACTS[kind]
    return frozenset(cap for cap, proto in contract.capabilities.items()
                     if proto is not None and not _missing(driver, proto))


def check(kind: str, name: str, driver: Any) -> DriverRecord:
    """Check ``driver`` against its kind's contract once and record what it offers."""
    contract = CONTRACTS[kind]
    who = f"{kind} driver {name!r} ({type(driver).__module__}.{type(driver).__qualname__})"
    missing = _missing(driver, contract.base)
    if missing:
        raise PluginError(f"{who} does not implement the {contract.base.__name__} contract: "
                          f"missing {', '.join(missing)}")
    caps = declared(driver)
    if caps is None:
        caps = satisfied(kind, driver)
    unknown = sorted(caps - set(contract.capabilities))
    if unknown:
        raise PluginError(f"{who} declares unknown {kind} capabilities {', '.join(unknown)}; "
                          f"known: {', '.join(sorted(contract.capabilities)) or 'none'}")
    for cap in sorted(caps):
        proto = contract.capabilities[cap]
        if proto is None:  # a promise: nothing to check
            continue
        lacking = _missing(driver, proto)
        if lacking:
            raise PluginError(f"{who} declares the {cap!r} capability ({proto.__name__}) "
                              f"but does not implement {', '.join(lacking)}")
    rec = DriverRecord(kind, name, frozenset(caps))
    try:
        _RECORDS[driver] = rec
    except TypeError:  # not weak-referenceable: checked again on each ask
        pass
    return rec


#: the load-time records, by driver object (weak: a driver dropped by a test goes with it)
_RECORDS: "weakref.WeakKeyDictionary[Any, DriverRecord]" = weakref.WeakKeyDictionary()


def record(kind: str, driver: Any) -> DriverRecord:
    """The record :func:`check` made when ``driver`` was loaded (checked now if it was built
    without the plugin loader, e.g. by a unit test)."""
    try:
        rec = _RECORDS.get(driver)
    except TypeError:
        rec = None
    if rec is None or rec.kind != kind:
        rec = check(kind, display_name(driver), driver)
    return rec


def display_name(obj: Any) -> str:
    """A driver's name for messages: its ``name`` (every base contract but transport's has one)."""
    return str(getattr(obj, "name", None) or type(obj).__name__)
