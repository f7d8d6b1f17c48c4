"""A container's rootfs mount (``ContainerService.mounted``, for docker cp and export) when
the handler using it is cancelled: the HTTP server cancels the handler of a client that
hangs up, at whatever await it is in, so mounting and unmounting must not be cut short."""

import asyncio
import threading
from types import SimpleNamespace

from dockyard.containers.queries import mounted
from dockyard.lifecycle import State


class Storage:
    def __init__(self):
        self.mounted = 0
        self.gate = threading.Event()
        self.entered = threading.Event()

    def mount(self, cid):
        self.entered.set()
        self.gate.wait(10)  # a slow mount: the cancel comes while it runs
        self.mounted += 1
        return f"/fake/{cid}"

    def unmount(self, cid):
        self.mounted -= 1


def service():
    storage = Storage()
    c = SimpleNamespace(id="c" * 64, state=State.EXITED)
    locks = {}
    svc = SimpleNamespace(storage=storage, containers={c.id: c}, fs_users={}, require_drivers=lambda: None,
                          lock=lambda cid: locks.setdefault(cid, asyncio.Lock()))
    return svc, c, storage


async def _until(cond):
    for _ in range(1000):
        if cond():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


def test_cancelled_while_mounting_leaves_nothing_mounted():
    async def go():
        svc, c, storage = service()

        async def handler():
            async with mounted(svc, c):
                await asyncio.Event().wait()

        task = asyncio.ensure_future(handler())
        await _until(storage.entered.is_set)
        task.cancel()  # the client hangs up during the mount
        storage.gate.set()
        await asyncio.gather(task, return_exceptions=True)
        await _until(lambda: storage.mounted == 0 and not svc.fs_users)

    asyncio.run(asyncio.wait_for(go(), 30))


def test_cancelled_while_releasing_still_unmounts():
    async def go():
        svc, c, storage = service()
        storage.gate.set()
        done = asyncio.Event()

        async def handler():
            async with mounted(svc, c):
                await done.wait()

        task = asyncio.ensure_future(handler())
        await _until(lambda: storage.mounted == 1)
        lock = svc.lock(c.id)
        await lock.acquire()  # someone else holds the container's lock when the handler is done
        done.set()
        for _ in range(5):
            await asyncio.sleep(0)  # the handler now waits for the lock to release the rootfs
        assert not task.done()
        task.cancel()  # and its client hangs up there
        lock.release()
        await asyncio.gather(task, return_exceptions=True)
        await _until(lambda: storage.mounted == 0 and not svc.fs_users)

    asyncio.run(asyncio.wait_for(go(), 30))
