"""After a start: one monitor task per running container records how it ended (``record_exit``),
then AutoRemove or the restart policy (``after_exit``); and the waits on those ends
(``docker wait``, attach's wait for a start, AutoRemove's wait for attached clients)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

from ..drivers.runtime import ExitStatus
from ..errors import DockyardError, InvalidArgument
from ..lifecycle import State
from ..tasks import spawn
from . import mounts, start, stop
from .record import Container

if TYPE_CHECKING:
    from .service import ContainerService

log = logging.getLogger("dockyard.containers")


def watch(svc: ContainerService, c: Container) -> None:
    """Start the monitor task of a running container (and its healthcheck, and the forwarding
    of its output to a forwarded log driver, from where it stopped)."""
    svc.logging.forward(svc, c)
    task = spawn(_wait_exit(svc, c), f"monitor of container {c.id[:12]}")
    svc.health.start(c)
    svc.monitors[c.id] = task

    def forget(t: asyncio.Task[None], cid: str = c.id) -> None:
        if svc.monitors.get(cid) is t:
            svc.monitors.pop(cid, None)

    task.add_done_callback(forget)


async def _wait_exit(svc: ContainerService, c: Container) -> None:
    try:
        status = await svc.runtime.wait(c.id)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.exception("waiting for %s failed", c.id[:12])
        status = ExitStatus(exit_code=255, error=str(exc))
    await svc.logging.drained(c)  # as Docker: the output reaches the log driver before the exit counts
    async with svc.lock(c.id):
        await record_exit(svc, c, status)
    await after_exit(svc, c)


async def record_exit(svc: ContainerService, c: Container, status: ExitStatus) -> None:
    """Save how the container ended and release its cgroup and mount. The state changes
    and waiters are woken whatever fails here (a release step, a full disk)."""
    oom = False
    try:
        if svc.cgroups is not None:  # in a worker: a cgroup's rmdir waits for the kernel's cgroup lock
            oom = await asyncio.to_thread(_release_cgroup, svc.cgroups, c.id)
        with contextlib.suppress(Exception):
            svc.storage.unmount(c.id)
        if svc.networks is not None:
            try:
                await svc.networks.teardown(c)
            except Exception:
                log.exception("releasing the network of %s failed", c.id[:12])
        mounts.release(svc, c)
        svc.health.stop(c.id)
    except Exception:
        log.exception("releasing what container %s held failed", c.id[:12])
    c.exit_code, c.pid, c.oom_killed = status.exit_code, 0, oom or status.oom_killed
    c.error = status.error or ""
    c.finished_ns = status.finished_at_ns or time.time_ns()
    try:  # the record written in a worker (a rename over it waits for ext4's flush)
        await svc.transition_async(c, "die", exitCode=c.exit_code)  # "oom" first if it was one
    finally:
        svc.wake(svc.exit_waiters, c.id, c)


def _release_cgroup(cgroups: Any, cid: str) -> bool:
    """Remove the container's cgroup (if any); True if the OOM killer struck in it."""
    oom = False
    if cgroups.exists(cid):
        with contextlib.suppress(Exception):
            oom = cgroups.oom_kills(cid) > 0
        with contextlib.suppress(Exception):
            cgroups.remove(cid)
    return oom


async def after_exit(svc: ContainerService, c: Container) -> None:
    """AutoRemove and restart policies, after the exit is recorded."""
    if c.id not in svc.containers:
        return
    if c.host_config.get("AutoRemove"):
        # the output must reach attached clients before the log goes with the container
        async with svc.detached:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(svc.detached.wait_for(lambda: not svc.attached.get(c.id)), 30)
        with contextlib.suppress(DockyardError):
            await stop.remove(svc, c.id, force=True, volumes=True)
        return
    if c.state == State.EXITED and should_restart(svc, c):  # (not if it was started meanwhile)
        delay = min(0.1 * (2 ** min(c.restart_count, 10)), 60.0)
        if c.finished_ns - c.started_ns > 10 * 10**9:
            delay = 0.1  # Docker resets the back-off after 10 s of running
        svc.transition(c, "schedule-restart")
        # stop, kill, rm and restart end this wait through cancel_restart (under the lock)
        await asyncio.sleep(delay)
        async with svc.lock(c.id):
            if c.id not in svc.containers or c.state != State.RESTARTING or c.manually_stopped:
                return
            c.restart_count += 1
            try:
                await start.launch(svc, c)
                svc.emit("restart", c)
            except Exception as exc:
                log.warning("restarting %s failed: %s", c.name, exc)
                cancel_restart(svc, c)


def cancel_restart(svc: ContainerService, c: Container) -> None:
    """A restarting container (between an exit and its restart, no process) becomes
    exited; whoever waits for it to stop is answered. Called with the lock held."""
    c.pid = 0
    svc.transition(c, "cancel-restart")
    svc.wake(svc.exit_waiters, c.id, c)


def should_restart(svc: ContainerService, c: Container) -> bool:
    if c.manually_stopped or svc.daemon_stopping:
        return False
    policy = c.host_config.get("RestartPolicy") or {}
    name = policy.get("Name") or "no"
    if name in ("always", "unless-stopped"):
        return True
    if name == "on-failure" and c.exit_code != 0:
        limit = int(policy.get("MaximumRetryCount") or 0)
        return not limit or c.restart_count < limit
    return False


# -- waits ------------------------------------------------------------------------------------

def exit_future(svc: ContainerService, c: Container) -> asyncio.Future[Container]:
    fut = asyncio.get_running_loop().create_future()
    if not c.running:
        fut.set_result(c)
    else:
        svc.exit_waiters.setdefault(c.id, []).append(fut)
    return fut


async def wait(svc: ContainerService, ref: str, condition: str = "not-running") -> Container:
    c = svc.get(ref)
    if condition not in ("not-running", "next-exit", "removed"):
        raise InvalidArgument(f"invalid condition: {condition!r}")
    loop = asyncio.get_running_loop()
    if condition == "removed":
        fut = loop.create_future()
        svc.removed_waiters.setdefault(c.id, []).append(fut)
        return await fut
    if condition == "not-running" and not c.running:
        return c
    fut = loop.create_future()
    svc.exit_waiters.setdefault(c.id, []).append(fut)
    return await fut


async def wait_started(svc: ContainerService, c: Container) -> bool:
    """For attach: True once the container runs; if it does not run yet, wait for its
    next start (True) or a failed start or removal (False)."""
    if c.state in (State.RUNNING, State.PAUSED):
        return True
    fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
    svc.start_waiters.setdefault(c.id, []).append(fut)
    return await fut


@contextlib.asynccontextmanager
async def attachment(svc: ContainerService, c: Container) -> Any:
    """Held while a client is attached, so AutoRemove waits for its output to be sent."""
    svc.attached[c.id] = svc.attached.get(c.id, 0) + 1
    try:
        yield
    finally:
        svc.attached[c.id] -= 1
        if not svc.attached[c.id]:
            del svc.attached[c.id]
        async with svc.detached:
            svc.detached.notify_all()
