"""Daemon start and stop: load the records and make them agree with reality (live-restore
re-attaches monitors, exits during the downtime are recorded, interrupted starts and removals
are finished), and at shutdown stop watching (containers keep running with live-restore)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from typing import TYPE_CHECKING

from ..drivers.runtime import ExitStatus
from ..errors import DockyardError
from ..lifecycle import State
from ..tasks import spawn
from . import cgparent, monitor, mounts, stop
from .record import Container

if TYPE_CHECKING:
    from .service import ContainerService

log = logging.getLogger("dockyard.containers")


async def reconcile(svc: ContainerService) -> None:
    """Load records and make them agree with reality; log every cleanup."""
    loaded = []
    for directory in sorted(svc.root.iterdir()):
        c = Container.load(directory) if directory.is_dir() else None
        if c is None:
            log.warning("removing container directory without a record: %s", directory.name)
            shutil.rmtree(directory, ignore_errors=True)
            continue
        loaded.append(c)
    for c in sorted(loaded, key=lambda c: (c.created_ns, c.id)):  # the dict keeps creation order
        svc.containers[c.id] = c
        if c.name in svc.names:  # written by a version that did not reserve names
            _rename_duplicate(svc, c)
        svc.names[c.name] = c.id
    known = set(svc.containers)
    if svc.runtime is not None:
        for cid in svc.runtime.list():
            if cid not in known:
                log.warning("removing runtime state of unknown container %s", cid[:12])
                await svc.runtime.delete(cid)
    if svc.cgroups is not None:
        cgparent.adopt_all(svc.cgroups, svc.containers.values())  # before list(): it finds them there
        for cid in svc.cgroups.list():
            if cid not in known:
                log.warning("removing stale cgroup of unknown container %s", cid[:12])
                with contextlib.suppress(Exception):
                    svc.cgroups.remove(cid)
    if svc.storage is not None:
        for cid in svc.storage.containers():
            if cid not in known:
                log.warning("removing writable layer of unknown container %s", cid[:12])
                await asyncio.to_thread(svc.storage.remove_rw, cid)
    for c in list(svc.containers.values()):
        await _reconcile_one(svc, c)


def _rename_duplicate(svc: ContainerService, c: Container) -> None:
    """Two records with one name: the oldest keeps it (the caller goes by creation time),
    this one gets ``<name>_<id[:12]>``, deterministically, and a log line says so."""
    new = f"{c.name}_{c.id[:12]}"
    while new in svc.names:
        new += "_"
    log.warning("container %s has the name %r of the older container %s: renamed to %r",
                c.id[:12], c.name, svc.names[c.name][:12], new)
    c.name = new
    svc.save_soft(c, durable=True)


async def _reconcile_one(svc: ContainerService, c: Container) -> None:
    if c.state == State.REMOVING:
        await _finish_removal(svc, c)
        return
    if c.starting:  # also "restarting": a restart policy was launching it
        await _reconcile_start(svc, c)
        return
    if not c.running:
        if svc.storage is not None and svc.storage.is_mounted(c.id):
            log.info("unmounting stale rootfs of stopped container %s", c.id[:12])
            svc.storage.unmount(c.id)
        return
    state = svc.runtime.state(c.id) if svc.runtime is not None else "unknown"
    if state == "running":
        log.info("live-restore: container %s (%s) is still running", c.id[:12], c.name)
        monitor.watch(svc, c)
        return
    status = svc.runtime.exit_status(c.id) if state == "exited" else None
    if status is None:
        status = ExitStatus(exit_code=255, error="container vanished while the daemon was down")
    log.info("container %s exited while the daemon was down (exit code %s)", c.id[:12], status.exit_code)
    svc.logging.forward(svc, c)  # what it wrote meanwhile, to a forwarded log driver
    await svc.logging.drained(c)
    await monitor.record_exit(svc, c, status)
    spawn(monitor.after_exit(svc, c), f"restart policy of container {c.id[:12]}")


async def _finish_removal(svc: ContainerService, c: Container) -> None:
    """The daemon died during ``rm``: the record says "removing", so finish it."""
    log.warning("finishing the removal of container %s (%s), interrupted by a daemon stop", c.id[:12], c.name)
    try:
        await stop.destroy(svc, c)
    except Exception:
        log.exception("removing container %s failed; `docker rm -f` retries it", c.id[:12])
        return
    if c.remove_volumes:
        await mounts.remove_anonymous(svc, c)
    svc.emit("destroy", c)


async def _reconcile_start(svc: ContainerService, c: Container) -> None:
    """The daemon died during ``start``, between the intent and the saved pid: adopt the
    process if it runs under its monitor, record its exit if it already ended, else kill
    whatever the launch left in the container's cgroup. Never a process the API does not know."""
    state = svc.runtime.state(c.id) if svc.runtime is not None else "unknown"
    pid = svc.runtime.pid(c.id) if state == "running" else None
    c.starting = False
    if pid:
        log.warning("adopting container %s (%s): started when the daemon stopped, pid %d", c.id[:12], c.name, pid)
        c.pid, c.error, c.exit_code = pid, "", 0
        c.started_ns, c.has_been_started, c.manually_stopped, c.oom_killed = time.time_ns(), True, False, False
        svc.transition(c, "adopt")
        monitor.watch(svc, c)
        return
    status = svc.runtime.exit_status(c.id) if state == "exited" and svc.runtime is not None else None
    if status is not None and c.has_been_started and status.finished_at_ns and c.finished_ns \
            and status.finished_at_ns <= c.finished_ns:
        status = None  # the exit of an earlier run, already recorded: this start launched nothing
    if status is not None:
        log.warning("container %s started and ended while the daemon was down (exit code %s)",
                    c.id[:12], status.exit_code)
        c.has_been_started, c.started_ns = True, c.started_ns or time.time_ns()
        await monitor.record_exit(svc, c, status)
        spawn(monitor.after_exit(svc, c), f"restart policy of container {c.id[:12]}")
        return
    log.warning("container %s: its start was interrupted by a daemon stop; removing what it launched", c.id[:12])
    if svc.cgroups is not None and svc.cgroups.exists(c.id):
        with contextlib.suppress(Exception):
            svc.cgroups.remove(c.id)  # kills every process in it first
    if svc.runtime is not None:  # what this start launched, not the logs of earlier runs
        with contextlib.suppress(Exception):
            await svc.runtime.delete(c.id, logs=False)
    with contextlib.suppress(Exception):
        svc.storage.unmount(c.id)
    if svc.networks is not None:
        with contextlib.suppress(Exception):
            await svc.networks.teardown(c)
    mounts.release(svc, c)
    c.error = "the daemon stopped while the container was starting"
    if c.state == State.RESTARTING:  # the restart policy tries again
        svc.transition(c, "cancel-restart")  # and after_exit schedules the next try
        spawn(monitor.after_exit(svc, c), f"restart policy of container {c.id[:12]}")
        return
    svc.save_soft(c)


async def close(svc: ContainerService) -> None:
    """Daemon shutdown: stop watching; containers keep running (live-restore)."""
    svc.daemon_stopping = True
    if not svc.daemon.config.live_restore:
        for c in list(svc.containers.values()):
            if c.running:
                await stop.stop_process(svc, c, None)
    for task in list(svc.monitors.values()):
        task.cancel()
    await svc.logging.close()  # forwarders stop; the shims keep the output for the next daemon
    for cid in list(svc.unsaved):  # a last try for records a full disk kept back
        kept = svc.containers.get(cid)
        if kept is not None:
            with contextlib.suppress(DockyardError):
                svc.save(kept, durable=True)
    if svc.unsaved:
        log.warning("%d container records could not be written (disk full?); the next start "
                    "rebuilds them from the runtime's state", len(svc.unsaved))
    if svc.cgroups is not None and not any(c.running for c in svc.containers.values()):
        with contextlib.suppress(Exception):
            svc.cgroups.remove_parent()  # leaves nothing behind; fails harmlessly while others use it


# a commit pausing a container writes this marker in its dir first and removes it after the unpause
# (dockyard.containers.archive.commit); here, not there: a daemon starts without the tar code
COMMIT_PAUSE_MARKER = "commit-paused"


async def resume_interrupted_commits(svc: ContainerService) -> None:
    """At start: unpause the containers a commit paused when the daemon was killed during it
    (the old state: running, as before the commit)."""
    for c in list(svc.containers.values()):
        marker = svc.dir(c) / COMMIT_PAUSE_MARKER
        if not marker.exists():
            continue
        if c.state == State.PAUSED:
            logging.getLogger("dockyard.containers").warning("unpausing %s, paused by an interrupted commit",
                                                             c.id[:12])
            try:
                await svc.unpause(c.id)
            except Exception:  # noqa: BLE001 - it stays paused, as docker unpause can still say
                logging.getLogger("dockyard.containers").exception("unpausing %s failed", c.id[:12])
                continue
        marker.unlink(missing_ok=True)
