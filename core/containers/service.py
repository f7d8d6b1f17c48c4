"""The containers service: a thin facade over one module per verb.

Drivers do the work: storage (rootfs), cgroups (limits, stats, freeze), runtime (process,
logs, exit record). Every transition is saved to the container's record before it is
announced as an event. The verbs live in their own modules, each a sequence of steps with
one rollback: :mod:`.create` (create, names, rename), :mod:`.start` (start, restart),
:mod:`.monitor` (exit recording, restart policy, waits), :mod:`.stop` (stop, kill, pause,
rm, prune), :mod:`.update`, :mod:`.queries` (list, inspect, logs, top, stats) and
:mod:`.reconcile` (daemon start-up and shutdown: live-restore, interrupted starts and
removals). This class holds the state they share and keeps the public API.
"""

from __future__ import annotations

import asyncio
import builtins
from pathlib import Path
from typing import Any

from ..errors import InvalidArgument, NoSuchContainer, Unavailable
from .. import lifecycle
from . import create as _create, monitor as _monitor, persist, queries as _queries, reconcile as _reconcile
from . import start as _start, stop as _stop, update as _update
from .logopts import ContainerLogging, json_log_path, log_path
from .record import Container


class ContainerService:
    def __init__(self, daemon: Any) -> None:
        self.daemon = daemon
        self.root: Path = daemon.config.data_root / "containers"
        self.root.mkdir(parents=True, exist_ok=True)
        self.events = daemon.events
        self.images: Any = getattr(daemon, "images", None)  # required by the verbs (require_drivers)
        self.storage = daemon.drivers.get("storage")
        self.cgroups = daemon.drivers.get("cgroups")
        self.runtime = daemon.drivers.get("runtime")
        self.networks = getattr(daemon, "networks", None)  # dockyard.networks.NetworkService
        self.daemon_userns = getattr(daemon, "userns", None)  # IdMapping with --userns-remap
        self.containers: dict[str, Container] = {}
        self.names: dict[str, str] = {}  # name -> id
        # names taken by a create or rename still under way (name -> id): reserved before the
        # first await, so two requests can never both pass the check (released when done)
        self.reserved: dict[str, str] = {}
        self.unsaved: set[str] = set()  # records a full disk kept from being written (retried)
        self.resaver: asyncio.Future[None] | None = None
        self.locks: dict[str, asyncio.Lock] = {}
        self.monitors: dict[str, asyncio.Task[None]] = {}
        self.exit_waiters: dict[str, list[asyncio.Future[Container]]] = {}
        self.removed_waiters: dict[str, list[asyncio.Future[Container]]] = {}
        self.start_waiters: dict[str, list[asyncio.Future[bool]]] = {}
        self.attached: dict[str, int] = {}  # open attach streams per container
        self.fs_users: dict[str, int] = {}  # open uses of a rootfs (archive, export, commit)
        self.detached = asyncio.Condition()
        self.logging = ContainerLogging(daemon.config, daemon.plugins)  # log drivers (dockyard.logging), forwarders
        self.daemon_stopping = False
        from .execs import ExecService
        from .health import HealthMonitor

        self.execs = ExecService(self)  # docker exec instances (in memory, like Docker)
        self.health = HealthMonitor(self)  # healthcheck probes of running containers (health.py)
        if self.images is not None:
            self.images.in_use = self.image_users

    # -- what the verbs share -------------------------------------------------------------

    def get(self, ref: str) -> Container:
        """By full id, unique id prefix, or name (with or without the leading ``/``)."""
        if ref in self.containers:
            return self.containers[ref]
        name = ref.lstrip("/")
        if name in self.names:
            return self.containers[self.names[name]]
        if ref and all(c in "0123456789abcdef" for c in ref):
            found = [c for cid, c in self.containers.items() if cid.startswith(ref)]
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise InvalidArgument(f"multiple IDs found with provided prefix: {ref}")
        raise NoSuchContainer(ref)

    def dir(self, c: Container) -> Path:
        return self.root / c.id

    def lock(self, cid: str) -> asyncio.Lock:
        return self.locks.setdefault(cid, asyncio.Lock())

    def save(self, c: Container, durable: bool = False) -> None:
        """Write the record (fsynced if ``durable``); a full disk is a clear error."""
        persist.save(self, c, durable)

    def save_soft(self, c: Container, durable: bool = False) -> bool:
        """Write the record, or keep it in memory and retry while the disk is full."""
        return persist.save_soft(self, c, durable)

    async def save_async(self, c: Container, durable: bool = False) -> None:
        """``save`` with the write in a worker thread (the event loop goes on meanwhile)."""
        await persist.save_async(self, c, durable)

    def emit(self, action: str, c: Container, **extra: Any) -> None:
        """A ``container`` event about ``c`` (its name, image and labels as attributes)."""
        attrs = {"name": c.name, "image": c.image, **c.labels, **{k: str(v) for k, v in extra.items()}}
        self.events.emit("container", action, c.id, **attrs)

    def transition(self, c: Container, action: str, *, durable: bool = False, soft: bool = True,
                   **attrs: Any) -> None:
        """Change ``c``'s state (``lifecycle.transition``: InvalidState if it may not), save
        the record (``soft``: kept in memory while the disk is full), then announce the change
        (``attrs`` go with the move's own event, e.g. ``exitCode`` with ``die``)."""
        events = lifecycle.transition(c, action)
        if soft:
            self.save_soft(c, durable)
        else:
            self.save(c, durable)
        for event in events:
            self.emit(event, c, **(attrs if event == events[-1] else {}))

    async def transition_async(self, c: Container, action: str, *, durable: bool = False, soft: bool = True,
                               **attrs: Any) -> None:
        """``transition`` with the record written in a worker thread (for durable saves: their
        fsyncs do not hold up the event loop)."""
        events = lifecycle.transition(c, action)
        if soft:
            await persist.save_soft_async(self, c, durable)
        else:
            await persist.save_async(self, c, durable)
        for event in events:
            self.emit(event, c, **(attrs if event == events[-1] else {}))

    @staticmethod
    def wake(waiters: dict[str, list[asyncio.Future[Any]]], cid: str, value: Any) -> None:
        for fut in waiters.pop(cid, []):
            if not fut.done():
                fut.set_result(value)

    def require_drivers(self) -> None:
        missing = [k for k in ("storage", "runtime") if getattr(self, k) is None] + (
            ["images"] if self.images is None else [])
        if missing:
            raise Unavailable(f"containers need a {' and a '.join(missing)} driver; none is loaded on this daemon")

    def image_users(self, image_id: str) -> list[tuple[str, bool]]:
        return _queries.image_users(self, image_id)

    # -- verbs ----------------------------------------------------------------------------

    async def create(self, body: dict[str, Any], name: str | None, warnings: list[str] | None = None) -> Container:
        return await _create.create(self, body, name, warnings)

    async def rename(self, ref: str, new: str) -> None:
        await _create.rename(self, ref, new)

    async def start(self, ref: str) -> None:
        await _start.start(self, ref)

    async def restart(self, ref: str, timeout: int | None = None, sig: str | None = None) -> None:
        await _start.restart(self, ref, timeout, sig)

    async def stop(self, ref: str, timeout: int | None = None, sig: str | None = None) -> None:
        await _stop.stop(self, ref, timeout, sig)

    async def kill(self, ref: str, sig: str | None) -> None:
        await _stop.kill(self, ref, sig)

    async def pause(self, ref: str) -> None:
        await _stop.pause(self, ref)

    async def unpause(self, ref: str) -> None:
        await _stop.unpause(self, ref)

    async def remove(self, ref: str, force: bool = False, volumes: bool = False) -> None:
        await _stop.remove(self, ref, force, volumes)

    async def prune(self, filters: str | None) -> dict[str, Any]:
        return await _stop.prune(self, filters)

    async def update(self, ref: str, body: dict[str, Any]) -> list[str]:
        return await _update.update(self, ref, body)

    async def wait(self, ref: str, condition: str = "not-running") -> Container:
        return await _monitor.wait(self, ref, condition)

    async def wait_started(self, c: Container) -> bool:
        """For attach: True once the container runs, False if it fails to start or goes."""
        return await _monitor.wait_started(self, c)

    def attachment(self, c: Container) -> Any:
        """Held while a client is attached, so AutoRemove waits for its output to be sent."""
        return _monitor.attachment(self, c)

    def mounted(self, c: Container) -> Any:
        """The container's root filesystem (mounted for the duration if it is stopped)."""
        return _queries.mounted(self, c)

    # -- queries --------------------------------------------------------------------------

    def list(self, all_: bool = False, limit: int = -1, filters: str | None = None,
             size: bool = False) -> builtins.list[dict[str, Any]]:
        return _queries.list_(self, all_, limit, filters, size)

    def inspect(self, ref: str, size: bool = False) -> dict[str, Any]:
        return _queries.inspect(self, ref, size)

    def logs(self, c: Container) -> Any:
        """The runtime's log reader, or None for a container that never ran."""
        return _queries.logs(self, c)

    def json_log_path(self, c: Container) -> Path:
        return json_log_path(self, c)

    def log_path(self, c: Container) -> Path | None:
        return log_path(self, c)

    def pids(self, c: Container) -> builtins.list[int]:
        return _queries.pids(self, c)

    def stats(self, c: Container, previous: dict[str, Any] | None) -> dict[str, Any]:
        return _queries.stats(self, c, previous)

    def counts(self) -> dict[str, int]:
        return _queries.counts(self)

    def info(self) -> dict[str, Any]:
        return self.counts()

    # -- start-up and shutdown ------------------------------------------------------------

    async def reconcile(self) -> None:
        await _reconcile.reconcile(self)

    async def close(self) -> None:
        await _reconcile.close(self)
