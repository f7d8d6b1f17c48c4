"""The client's stdin on a hijacked connection: copied into the runtime's stdin FIFO, with
Docker's detach keys.

Detach keys (``detachKeys`` on attach, ``DetachKeys`` on exec create; default ctrl-p,ctrl-q)
apply with a TTY only, as in moby (``container/stream/attach.go`` copies non-TTY stdin
verbatim). When the client types them, the copy stops, the connection is closed and the
process keeps running; its stdin stays open for the next attach (the runtime is told with
``on_detach`` before the FIFO is closed, so a closed FIFO is not taken for the end of stdin).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
from pathlib import Path
from typing import Awaitable, Callable

from ..containers.detachkeys import DetachScanner
from ..tasks import set_done
from .hijack import Hijacked

F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
FIFO_SIZE = 1 << 20  # the default pipe-max-size; a bigger FIFO means fewer wake-ups


async def open_fifo_writer(path: Path, timeout: float = 5.0) -> int | None:
    """Open a FIFO for writing without blocking (its reader, the shim, must be there)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno not in (errno.ENXIO, errno.ENOENT) or loop.time() > deadline:
                return None
            await asyncio.sleep(0.02)
            continue
        try:
            fcntl.fcntl(fd, F_SETPIPE_SZ, FIFO_SIZE)
        except OSError:
            pass  # pipe-max-size is lower here: the default size still works
        return fd


async def _writable(fd: int) -> None:
    loop = asyncio.get_running_loop()
    fut = loop.create_future()
    loop.add_writer(fd, set_done, fut)
    try:
        await fut
    finally:
        loop.remove_writer(fd)


async def pump_stdin(conn: Hijacked, path: Path, detach_keys: bytes = b"",
                     on_detach: Callable[[], None] | None = None) -> str:
    """Copy the client's stdin into the FIFO until the client's EOF ("eof"), the detach keys
    ("detached"; ``on_detach`` runs before the FIFO closes) or the reader going away ("gone").
    Closing the FIFO is the end of stdin for the process when the runtime closes stdin once."""
    fd = await open_fifo_writer(path)
    if fd is None:
        return "gone"
    scanner = DetachScanner(detach_keys)
    try:
        while True:
            chunk = await conn.read()
            if chunk is None:
                return "eof"
            chunk, detached = scanner.feed(chunk)
            view = memoryview(chunk)
            while view:
                try:
                    view = view[os.write(fd, view):]
                except BlockingIOError:
                    await _writable(fd)
                except OSError:  # the reader went away (the process ended)
                    return "gone"
            if detached:
                if on_detach is not None:
                    on_detach()
                return "detached"
    finally:
        os.close(fd)


async def run_streams(output: Awaitable[None], stdin: Awaitable[str] | None) -> str:
    """Copy output and stdin at the same time until the output ends ("done"), or until the
    client types the detach keys ("detached": the output copy is cancelled)."""
    out_task = asyncio.ensure_future(output)
    in_task = asyncio.ensure_future(stdin) if stdin is not None else None
    try:
        if in_task is not None:
            done, _ = await asyncio.wait({out_task, in_task}, return_when=asyncio.FIRST_COMPLETED)
            if in_task in done and not in_task.cancelled() and in_task.exception() is None \
                    and in_task.result() == "detached":
                return "detached"
        await out_task
        return "done"
    finally:
        for task in (out_task, in_task):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            elif task is not None and not task.cancelled():
                task.exception()  # retrieved: a stdin copy that failed first is no error of the stream
