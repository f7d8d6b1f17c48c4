"""Give memory back to the system once the daemon is quiet again (issue 18: memory after work).

Python frees its objects after an image load, a build or a big log read, but glibc keeps the
freed pages in its heaps (one per thread that allocated: the executor's threads have their
own) unless they sit at the very top: measured here, a daemon that loaded, saved and built
60 MB images and streamed 30 MB of logs and exec input stayed 6-8 MB above its fresh figure
until ``malloc_trim(0)`` returned it (below the fresh figure).

So every ``INTERVAL`` seconds the janitor looks at the API's request count (fast-path pings do
not count: they allocate nothing): after a period with requests followed by a quiet one, it
calls ``malloc_trim(0)`` once, in a worker thread (a trim walks every free chunk: 10-140 ms
for a fragmented heap). Start-up counts as work: the first look, ``FIRST`` seconds after it,
trims even if clients already came (their pings are no reason to keep start-up's garbage);
an idle daemon does not trim again; a busy one trims when it calms down. Before each trim the
libnftables contexts are freed (:func:`dockyard.nftables.release_idle`: 3.4 MB after the
default bridge's start-up batches, made again at the next batch).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import sys
from typing import Any, Callable

log = logging.getLogger("dockyard.api")

INTERVAL = 5.0
FIRST = 1.0  # the first look, after start-up's work


def _malloc_trim() -> Callable[[], Any] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int

    def release_and_trim() -> Any:
        nft = sys.modules.get("dockyard.nftables")  # not imported when nothing used nftables
        if nft is not None:
            nft.release_idle()  # libnftables' ruleset copies (3.4 MB after the default bridge's start)
        return trim(0)

    return release_and_trim


class MemoryJanitor:
    def __init__(self, work: Callable[[], int], trim: Callable[[], Any] | None = None,
                 interval: float = INTERVAL, first: float = FIRST) -> None:
        self.work = work  # a counter that grows with the work done (requests answered)
        self.trim = trim if trim is not None else _malloc_trim()
        self.interval = interval
        self.first = min(first, interval)
        self.seen = work()
        self.dirty = True  # work since the last trim (start-up is work: ~2 MB come back)
        self.trims = 0
        self._timer: asyncio.TimerHandle | None = None
        self._running: asyncio.Future[Any] | None = None

    def start(self) -> None:
        if self.trim is not None:
            self._timer = asyncio.get_running_loop().call_later(self.first, self._tick)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def tick(self, first: bool = False) -> bool:
        """One look at the counter; True when it is time to trim (quiet after work). The
        first look trims whatever came since: start-up's garbage is there once, and the
        clients a daemon meets at once (a service manager's or a test's pings) are no reason
        to keep it."""
        now = self.work()
        busy, self.seen = now != self.seen and not first, now
        if busy:
            self.dirty = True
            return False
        if self.dirty and (self._running is None or self._running.done()):
            self.dirty = False
            return True
        return False

    def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self.interval, self._tick)
        if self.tick(first=self.trims == 0) and self.trim is not None:
            self.trims += 1
            self._running = loop.run_in_executor(None, self.trim)
