"""Volume drivers (``dockyard.volume``): where a named volume's data lives and how it is mounted.

The volumes service owns the records (name, driver, options, labels, creation time) and who
uses what; a volume driver owns the data. Several volume drivers are active at once: each
volume names its driver (``local`` when none is given), and the service loads a driver the
first time a volume asks for it. A third party adds one with pip: a class in the
``dockyard.volume`` entry-point group.

Methods are synchronous and may block (the service calls them in a worker thread). They raise
:class:`dockyard.errors.DockyardError`s: ``InvalidArgument`` for options the driver does not
accept (raised by :meth:`create`, so nothing is left behind), ``NotFound`` for missing volumes.

Drivers are constructed as ``cls(config=dict, root=Path, state=Path)`` and may define a
classmethod ``check()`` raising :class:`dockyard.errors.SkipPlugin`.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class VolumeDriver(Protocol):
    name: str
    scope: str  # "local" (data on this host) or "global"

    def create(self, name: str, options: dict[str, str]) -> None:
        """Create the volume's storage. Validates ``options`` first (``InvalidArgument``)."""
        ...

    def remove(self, name: str) -> None:
        """Delete the volume and its data; unmount first if needed. Missing is fine."""
        ...

    def path(self, name: str) -> str:
        """The host path shown as ``Mountpoint`` (it holds the data once mounted)."""
        ...

    def mount(self, name: str, ref: str) -> str:
        """Make the volume usable for user ``ref`` (a container id) and return the host path
        to bind into the container. Counted per ref: the first mount does the work (e.g. mount
        a device), repeated calls for the same ref are idempotent."""
        ...

    def unmount(self, name: str, ref: str) -> None:
        """``ref`` no longer uses the volume; the last one out undoes :meth:`mount`. Unknown
        refs are fine (idempotent)."""
        ...

    def status(self, name: str) -> dict[str, Any] | None:
        """Driver-specific ``Status`` for inspect, or None."""
        ...

    def size(self, name: str) -> int:
        """Bytes used, for ``GET /system/df``; -1 when unknown."""
        ...

    def close(self) -> None:
        """Daemon shutdown. Mounts used by running containers stay (live-restore)."""
        ...


@runtime_checkable
class ListingVolume(Protocol):
    """``list``: the driver can list the volumes it holds (Docker's volume plugin ``List``).
    The volumes service keeps its own records and does not need it; conformance suites and
    tools use it when the driver has it."""

    def list(self) -> list[str]:
        """Names of the volumes this driver holds."""
        ...


VOLUME_CAPABILITIES: dict[str, type | None] = {"list": ListingVolume}
