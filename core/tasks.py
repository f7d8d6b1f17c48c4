"""Background tasks: the one way core and plugins start a task nobody awaits.

``asyncio`` keeps only a weak reference to a task, and an exception in a task that nobody
awaits is reported ("Task exception was never retrieved") only when the task is garbage
collected, long after the fact, if ever. :func:`spawn` keeps a strong reference until the
task is done and logs its exception at once, with a name saying what failed. Tasks that are
awaited (``gather``, ``wait_for``, a handler awaiting its own task) need no helper.

The test fixtures (``dockyard.testing.pytest_plugin``) fail a test whose daemon logged
"Task exception was never retrieved": use :func:`spawn` for every fire-and-forget task.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any, Coroutine, overload

log = logging.getLogger("dockyard.tasks")

_running: set[asyncio.Future[Any]] = set()


@overload
def spawn(coro: Coroutine[Any, Any, Any], what: str = "") -> asyncio.Task[Any]: ...


@overload
def spawn(coro: asyncio.Future[Any], what: str = "") -> asyncio.Future[Any]: ...


def spawn(coro: Coroutine[Any, Any, Any] | asyncio.Future[Any], what: str = "") -> asyncio.Future[Any]:
    """Run ``coro`` in the background; its exception (if any) is logged, never lost.

    ``what`` names the job in the log line (e.g. ``"monitor of 0123abcd"``). The returned
    task may still be awaited or cancelled by the caller."""
    task = asyncio.ensure_future(coro)
    _running.add(task)
    task.add_done_callback(functools.partial(_done, what=what))
    return task


def set_done(fut: asyncio.Future[None]) -> None:
    """A loop callback (``add_reader``, ``call_later``): resolve ``fut`` unless it already is."""
    if not fut.done():
        fut.set_result(None)


def _done(task: asyncio.Future[Any], what: str) -> None:
    _running.discard(task)
    if task.cancelled():
        return
    exc = task.exception()  # marks it retrieved
    if exc is not None:
        log.error("background task %s failed", what or task, exc_info=exc)


def running() -> int:
    """How many spawned tasks have not finished (for tests and debugging)."""
    return len(_running)
