"""Threads for work on a container's filesystem: ``docker cp`` both ways, ``docker export``
and ``docker commit``.

That filesystem belongs to the container, which can make any such operation slow (a huge
tree, a file that grows while it is read, a client that does not read its archive). So this
work never runs in the event loop's default executor, which ``docker run``, ``ps`` and every
other request share: it runs in an executor of its own, and each container may hold at most
``PER_CONTAINER`` of its threads at a time. Further operations on the same container wait
for a slot without holding a thread; a slow container only slows itself, and others keep
``TOTAL - PER_CONTAINER`` threads at least.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from concurrent.futures import ThreadPoolExecutor
from typing import Any, AsyncIterator, Callable, TypeVar

T = TypeVar("T")

PER_CONTAINER = 4
TOTAL = 32


class FsWorkers:
    def __init__(self, per_container: int = PER_CONTAINER, total: int = TOTAL) -> None:
        self.per_container = per_container
        self.executor = ThreadPoolExecutor(total, thread_name_prefix="dockyard-fs")
        self._slots: dict[str, tuple[asyncio.Semaphore, int]] = {}  # id -> (semaphore, users)

    @contextlib.asynccontextmanager
    async def slot(self, cid: str) -> AsyncIterator[None]:
        """Hold one of ``cid``'s slots for the duration (waiting, without a thread, if all are taken)."""
        sem, users = self._slots.get(cid) or (asyncio.Semaphore(self.per_container), 0)
        self._slots[cid] = (sem, users + 1)
        try:
            async with sem:
                yield
        finally:
            sem, users = self._slots[cid]
            if users <= 1:
                del self._slots[cid]
            else:
                self._slots[cid] = (sem, users - 1)

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` in one of these threads (the caller holds a slot)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, functools.partial(fn, *args, **kwargs))

    def busy(self, cid: str) -> int:
        """How many operations on ``cid`` are running or waiting."""
        return self._slots.get(cid, (None, 0))[1]


WORKERS = FsWorkers()
