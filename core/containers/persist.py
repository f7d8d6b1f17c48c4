"""Writing container records: atomic always, fsynced when asked; a full disk keeps the state in
memory and a task writes it when space returns (``save_soft``). And the disk-full error text."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
from typing import TYPE_CHECKING

from .. import store
from ..errors import DockyardError
from ..tasks import spawn
from .record import RECORD, Container

if TYPE_CHECKING:
    from .service import ContainerService

log = logging.getLogger("dockyard.containers")

DISK_FULL = {errno.ENOSPC, errno.EDQUOT}


def save(svc: ContainerService, c: Container, durable: bool = False) -> None:
    """Atomic always; fsynced only for what cannot be re-derived (``durable``): after a
    crash, reconcile rebuilds running/exited state from the runtime's own records.
    A failed write (a full disk) is a clear error naming the cause."""
    try:
        c.save(svc.dir(c), sync=durable)
    except OSError as exc:
        raise DockyardError(f"cannot write the record of container {c.id[:12]}: {os_reason(exc)}") from exc
    svc.unsaved.discard(c.id)


def save_soft(svc: ContainerService, c: Container, durable: bool = False) -> bool:
    """For transitions that must happen even when nothing can be written (stop, kill, rm,
    an exit): the state changes in memory, the record is written when space returns (a
    retry every second) or rebuilt at the next start. False if it was not written."""
    try:
        save(svc, c, durable)
        return True
    except DockyardError as exc:
        return _keep_unsaved(svc, c, exc)


def _keep_unsaved(svc: ContainerService, c: Container, exc: DockyardError) -> bool:
    if c.id not in svc.containers:
        return False
    log.warning("%s; kept in memory, written when possible", exc)
    svc.unsaved.add(c.id)
    if svc.resaver is None or svc.resaver.done():
        svc.resaver = spawn(_resave(svc), "writing records kept back by a full disk")
    return False


async def save_async(svc: ContainerService, c: Container, durable: bool = False) -> None:
    """``save`` with the write (and its fsyncs) in a worker thread: a durable save waits for
    two disk flushes (~5 ms each on a busy ext4), which on the event loop held up every other
    request, and concurrent saves' flushes now share the journal's commits. The record is
    encoded here, before the wait: the file holds the state of this moment. Callers hold the
    container's lock (or the container is not listed yet), so saves of one record do not race."""
    data = store.dumps(c.to_dict())
    write = asyncio.ensure_future(asyncio.to_thread(store.write_atomic, svc.dir(c) / RECORD, data, 0o600, durable))
    try:
        await asyncio.shield(write)
    except asyncio.CancelledError:  # the write ends before the caller's undo (rmtree) starts
        await asyncio.wait([write])
        raise
    except OSError as exc:
        raise DockyardError(f"cannot write the record of container {c.id[:12]}: {os_reason(exc)}") from exc
    svc.unsaved.discard(c.id)


async def save_soft_async(svc: ContainerService, c: Container, durable: bool = False) -> bool:
    """``save_soft`` with the write in a worker thread (see ``save_async``)."""
    try:
        await save_async(svc, c, durable)
        return True
    except DockyardError as exc:
        return _keep_unsaved(svc, c, exc)


async def _resave(svc: ContainerService) -> None:
    while svc.unsaved and not svc.daemon_stopping:
        await asyncio.sleep(1)
        for cid in list(svc.unsaved):
            c = svc.containers.get(cid)
            if c is None or not svc.dir(c).is_dir():
                svc.unsaved.discard(cid)
                continue
            try:
                save(svc, c, durable=True)
            except DockyardError:
                break  # still full: try again later
            log.info("record of container %s written", cid[:12])


def raise_if_disk_full(exc: BaseException, what: str) -> None:
    """A step failed because the disk is full (the OSError itself, or a driver's error made
    from one): raise one clear error naming it instead, e.g. ``cannot start container
    0123456789ab: no space left on device (ENOSPC)``."""
    cause = exc if isinstance(exc, OSError) else exc.__cause__
    if isinstance(cause, OSError) and cause.errno in DISK_FULL and "(ENOSPC)" not in str(exc) \
            and "(EDQUOT)" not in str(exc):
        raise DockyardError(f"{what}: {os_reason(cause)}") from exc


def os_reason(exc: OSError) -> str:
    """``no space left on device (ENOSPC)``: the cause of a failed write, for an error message."""
    if exc.errno is None:
        return str(exc)
    text = os.strerror(exc.errno)
    return f"{text[:1].lower()}{text[1:]} ({errno.errorcode.get(exc.errno, exc.errno)})"
