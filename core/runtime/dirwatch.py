"""Wake-ups when files in a directory change (inotify through ctypes), for log followers.

Following a log by polling costs up to one poll interval of latency per chunk of output:
with a watch on the log's directory (and the exit file's), a follower wakes as soon as the
shim writes a record or the exit file appears. Where inotify is not available (or the
per-user watch limit is reached), :meth:`DirWatcher.wait` is a plain sleep.

One inotify instance serves every follower of an event loop: closing an inotify fd waits
for the kernel's RCU grace period (10-20 ms here), far too long for each ``docker exec``.
Watches are reference-counted per directory (the kernel gives the same watch to the same
inode) and removed when their last follower goes.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
import struct
import weakref
from pathlib import Path

from ..tasks import set_done

IN_MODIFY = 0x002
IN_ATTRIB = 0x004
IN_CLOSE_WRITE = 0x008
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_IGNORED = 0x8000
MASK = IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_DELETE_SELF
EVENT = struct.Struct("iIII")  # wd, mask, cookie, len (then len bytes of name)

_libc: ctypes.CDLL | bool | None = None


def _lib() -> ctypes.CDLL | None:
    global _libc
    if _libc is None:
        try:
            lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            lib.inotify_init1.argtypes = [ctypes.c_int]
            lib.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
            lib.inotify_rm_watch.argtypes = [ctypes.c_int, ctypes.c_int]
            _libc = lib
        except (OSError, AttributeError):
            _libc = False
    return _libc if isinstance(_libc, ctypes.CDLL) else None


class _Inotify:
    """The event loop's inotify instance: watch descriptors -> the DirWatchers using them."""

    def __init__(self, lib: ctypes.CDLL, fd: int, loop: asyncio.AbstractEventLoop) -> None:
        self.lib, self.fd, self.loop = lib, fd, loop
        self.users: dict[int, set[DirWatcher]] = {}
        loop.add_reader(fd, self._read)

    def add(self, path: Path, watcher: "DirWatcher") -> int | None:
        wd = self.lib.inotify_add_watch(self.fd, os.fsencode(str(path)), MASK)
        if wd < 0:
            return None
        self.users.setdefault(wd, set()).add(watcher)
        return wd

    def remove(self, wd: int, watcher: "DirWatcher") -> None:
        users = self.users.get(wd)
        if users is None:
            return
        users.discard(watcher)
        if not users:
            del self.users[wd]
            self.lib.inotify_rm_watch(self.fd, wd)

    def _read(self) -> None:
        try:
            data = os.read(self.fd, 65536)
        except OSError:
            return
        pos = 0
        while pos + EVENT.size <= len(data):
            wd, mask, _cookie, n = EVENT.unpack_from(data, pos)
            pos += EVENT.size + n
            for w in list(self.users.get(wd, ())):
                w.notify()
            if mask & IN_IGNORED:  # the directory is gone: its followers fall back to polling
                self.users.pop(wd, None)


_instances: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Inotify | None]" = weakref.WeakKeyDictionary()


def _instance() -> _Inotify | None:
    loop = asyncio.get_running_loop()
    if loop in _instances:
        return _instances[loop]
    lib = _lib()
    inst = None
    if lib is not None:
        fd = lib.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd >= 0:
            inst = _Inotify(lib, fd, loop)
            weakref.finalize(loop, os.close, fd)
    _instances[loop] = inst
    return inst


class DirWatcher:
    """Watch ``dirs``; :meth:`wait` returns at the next change in any of them (or after
    ``timeout``). Changes since the watch was set up or since the last wait count, so a
    caller that checks, then waits, misses nothing. Needs a running event loop; close it
    (or use ``with``)."""

    def __init__(self, *dirs: Path) -> None:
        self._inotify = _instance()
        self._wds: list[int] = []
        self._changed = False
        self._waiter: asyncio.Future[None] | None = None
        if self._inotify is not None:
            for d in {Path(p) for p in dirs}:
                wd = self._inotify.add(d, self)
                if wd is not None:
                    self._wds.append(wd)

    def notify(self) -> None:
        self._changed = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def wait(self, timeout: float) -> None:
        if not self._wds:
            await asyncio.sleep(timeout)
            return
        if not self._changed:
            # not asyncio.wait_for: in Python 3.11 it can swallow a cancellation that comes
            # together with the wake-up, and a cancelled follower must stop
            loop = asyncio.get_running_loop()
            fut = self._waiter = loop.create_future()
            timer = loop.call_later(timeout, set_done, fut)
            try:
                await fut
            finally:
                timer.cancel()
                self._waiter = None
        self._changed = False

    def close(self) -> None:
        if self._inotify is not None:
            for wd in self._wds:
                self._inotify.remove(wd, self)
        self._wds.clear()

    def __enter__(self) -> "DirWatcher":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
