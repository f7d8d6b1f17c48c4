"""Ending containers: ``stop`` (signal, grace time, SIGKILL), ``kill``, ``pause``/``unpause``,
and ``rm``/``prune`` (the "removing" intent saved first, so a daemon killed half-way finishes
the removal at its next start)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import signal as signals
from typing import TYPE_CHECKING, Any

from .. import filters as F
from ..crashpoints import crashpoint
from ..errors import InvalidArgument, InvalidState, NoSuchContainer, Unavailable
from .. import lifecycle
from ..lifecycle import State, require
from . import monitor, mounts, queries
from .record import Container

if TYPE_CHECKING:
    from .service import ContainerService

log = logging.getLogger("dockyard.containers")

DEFAULT_STOP_TIMEOUT = 10
KILL_EXIT_WAIT = 10  # seconds a SIGKILL waits for the exit (moby's Kill)


def parse_signal(value: str | int | None, default: int = signals.SIGKILL) -> int:
    """``9``, ``KILL``, ``SIGKILL`` -> 9; anything else is Docker's 400."""
    if value in (None, ""):
        return default
    text = str(value).upper()
    if text.isdigit():
        num = int(text)
        if 0 < num < signals.NSIG:
            return num
    else:
        name = text if text.startswith("SIG") else "SIG" + text
        sig = getattr(signals.Signals, name, None) if name in signals.Signals.__members__ else None
        if sig is not None:
            return int(sig)
    raise InvalidArgument(f"Invalid signal: {value}")


async def stop(svc: ContainerService, ref: str, timeout: int | None = None, sig: str | None = None) -> None:
    c = svc.get(ref)
    async with svc.lock(c.id):
        if c.state == State.RESTARTING:
            c.manually_stopped = True
            monitor.cancel_restart(svc, c)
            svc.emit("stop", c)
            return
        require(c.state, "stop", c.id)
        c.manually_stopped = True
        svc.save_soft(c)
    await stop_process(svc, c, timeout, sig)
    svc.emit("stop", c)


async def stop_process(svc: ContainerService, c: Container, timeout: int | None, sig: str | None = None,
                       kill_now: bool = False) -> None:
    """Stop signal, wait up to ``timeout`` seconds, then SIGKILL every process; ``kill_now``
    (``rm -f``, as moby's Kill): SIGKILL at once, no stop signal first. A restarting
    container has no process: its pending restart is cancelled. Never called with the
    container's lock held."""
    if c.state == State.RESTARTING:
        async with svc.lock(c.id):
            if c.state == State.RESTARTING:
                c.manually_stopped = True
                monitor.cancel_restart(svc, c)
                return
    if timeout is None:
        timeout = c.config.get("StopTimeout")
        timeout = DEFAULT_STOP_TIMEOUT if timeout is None else int(timeout)
    stop_signal = parse_signal(sig or c.config.get("StopSignal"), signals.SIGTERM)
    waiter = monitor.exit_future(svc, c)
    if c.state == State.PAUSED and svc.cgroups is not None:
        svc.cgroups.thaw(c.id)
        lifecycle.transition(c, "thaw")  # in memory only (as before): the exit is saved soon
    if not kill_now:
        with contextlib.suppress(InvalidState, NoSuchContainer):
            await svc.runtime.kill(c.id, stop_signal)
            svc.emit("kill", c, signal=stop_signal)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), timeout if timeout >= 0 else None)
            return
        except asyncio.TimeoutError:
            log.info("container %s did not stop after %ss, killing it", c.id[:12], timeout)
    svc.emit("kill", c, signal=int(signals.SIGKILL))
    if svc.cgroups is not None:  # in a worker: ~10 cgroupfs calls
        await asyncio.to_thread(_kill_cgroup, svc.cgroups, c.id)
    with contextlib.suppress(InvalidState, NoSuchContainer):
        await svc.runtime.kill(c.id, signals.SIGKILL)
    while not waiter.done():
        await asyncio.wait({waiter}, timeout=5)
        if not waiter.done() and c.running and c.id not in svc.monitors:
            log.warning("container %s has no monitor: watching it again", c.id[:12])
            monitor.watch(svc, c)  # its exit is recorded (and the waiter answered) by the monitor


def _kill_cgroup(cgroups: Any, cid: str) -> None:
    """SIGKILL every process in the container's cgroup, if it has one."""
    with contextlib.suppress(Exception):
        if cgroups.exists(cid):
            cgroups.kill_all(cid, signals.SIGKILL)


async def kill(svc: ContainerService, ref: str, sig: str | None) -> None:
    c = svc.get(ref)
    num = parse_signal(sig)
    waiter: asyncio.Future[Container] | None = None
    async with svc.lock(c.id):
        require(c.state, "kill", c.id)
        if num in (signals.SIGKILL, signals.SIGTERM, signals.SIGINT):
            c.manually_stopped = True  # docker kill does not trigger restart "unless-stopped"
            if c.state == State.RESTARTING:  # no process: the pending restart is what goes
                monitor.cancel_restart(svc, c)
                svc.emit("kill", c, signal=num)
                return
            svc.save_soft(c)
        if num == signals.SIGKILL:
            waiter = monitor.exit_future(svc, c)
        try:
            await svc.runtime.kill(c.id, num)
        except BaseException:
            if waiter is not None and not waiter.done():
                waiter.cancel()
            raise
    svc.emit("kill", c, signal=num)
    if waiter is not None:
        # As moby's Kill: a SIGKILL waits (briefly) for the exit to be recorded, so the
        # client's next request sees the container exited (137), not still running.
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(waiter), KILL_EXIT_WAIT)


async def pause(svc: ContainerService, ref: str) -> None:
    c = svc.get(ref)
    async with svc.lock(c.id):
        require(c.state, "pause", c.id)
        need_cgroups(svc).freeze(c.id)
        svc.transition(c, "pause", soft=False)


async def unpause(svc: ContainerService, ref: str) -> None:
    c = svc.get(ref)
    async with svc.lock(c.id):
        require(c.state, "unpause", c.id)
        need_cgroups(svc).thaw(c.id)
        svc.transition(c, "unpause", soft=False)


def need_cgroups(svc: ContainerService) -> Any:
    if svc.cgroups is None:
        raise Unavailable("no cgroups driver is loaded on this daemon")
    return svc.cgroups


# -- remove -----------------------------------------------------------------------------------

async def remove(svc: ContainerService, ref: str, force: bool = False, volumes: bool = False) -> None:
    c = svc.get(ref)
    if c.running:
        if not force:
            require(c.state, "remove", c.id)
        c.manually_stopped = True
        await stop_process(svc, c, timeout=0, kill_now=True)
    async with svc.lock(c.id):
        if c.id not in svc.containers:
            return
        # the intent first: a daemon killed during the removal finishes it at its next
        # start (reconcile); a container in "removing" is removed by any later rm too
        c.remove_volumes = c.remove_volumes or volumes
        await svc.transition_async(c, "remove", durable=True)  # a full disk still removes (and frees space)
        crashpoint("container.rm.after_intent")
        await destroy(svc, c)
    if c.remove_volumes:
        await mounts.remove_anonymous(svc, c)
    svc.emit("destroy", c)
    svc.wake(svc.removed_waiters, c.id, c)
    svc.wake(svc.start_waiters, c.id, False)


async def destroy(svc: ContainerService, c: Container) -> None:
    """Remove everything a container owns; each step tolerates what is already gone (also
    what a removal interrupted by a crash left half done)."""
    task = svc.monitors.pop(c.id, None)
    if task is not None and task is not asyncio.current_task():  # AutoRemove runs in the monitor
        task.cancel()
    svc.execs.forget(c.id)
    svc.health.forget(c.id)
    await svc.runtime.delete(c.id)
    crashpoint("container.rm.after_runtime")
    if svc.networks is not None:
        with contextlib.suppress(Exception):
            await svc.networks.teardown(c)
    await asyncio.to_thread(_remove_on_disk, svc, c)  # one worker for the three
    svc.containers.pop(c.id, None)
    if svc.names.get(c.name) == c.id:
        del svc.names[c.name]
    svc.locks.pop(c.id, None)
    if svc.images is not None and c.image_id in svc.images.held:  # its image went with `rmi -f`
        await asyncio.to_thread(svc.images.release, c.image_id)


def _remove_on_disk(svc: ContainerService, c: Container) -> None:
    """The cgroup (anything left in it is killed first; a v1 rmdir waits for the kernel's
    cgroup lock), the writable layer, then the container's directory."""
    if svc.cgroups is not None:
        with contextlib.suppress(Exception):
            svc.cgroups.remove(c.id)
    svc.storage.remove_rw(c.id)
    crashpoint("container.rm.after_layer")
    shutil.rmtree(svc.dir(c), True)


async def prune(svc: ContainerService, filters: str | None) -> dict[str, Any]:
    f = F.parse(filters, ("label", "label!", "until"))
    until = F.until_ns(f)
    deleted, reclaimed = [], 0
    for c in list(svc.containers.values()):
        if c.running:  # one in "removing" (an rm that failed half-way) is finished too
            continue
        if not F.labels_match(f, c.labels):
            continue
        if until is not None and c.created_ns > until:
            continue
        reclaimed += queries.rw_size(svc, c)
        await remove(svc, c.id)
        deleted.append(c.id)
    svc.events.emit("container", "prune", "", reclaimed=reclaimed)
    return {"ContainersDeleted": deleted or None, "SpaceReclaimed": reclaimed}
