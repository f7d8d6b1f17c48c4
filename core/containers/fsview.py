"""A container's filesystem with its mounts in place, for ``docker cp`` (``HEAD``, ``GET`` and
``PUT /containers/{id}/archive``). Export and commit do not use it: as in Docker, they are
the container's own layer only.

* A running or paused container is seen through ``/proc/<pid>/root``: the root of its own
  mount namespace, with its volumes, binds, tmpfs mounts and ``/etc/hosts`` & co. in place.
  The fd is checked to be the container's storage mount (a pid reused by another process
  is never trusted), and lookups stay on the root's filesystem and the container's own
  mounts: the runtime's ``/proc``, ``/sys`` and ``/dev`` are not entered (Docker's view of
  a container does not have them either).
* A stopped (or never started) container gets what Docker gives it: a private mount
  namespace, made in a throw-away thread, where each volume and bind source is bind-mounted
  over its destination in the container's rootfs (destinations resolved inside the rootfs,
  missing mount points created as Docker does); from the first start on, also the
  container's ``hostname``, ``hosts`` and ``resolv.conf``. An open fd of the namespace
  keeps it alive for the copy; closing it takes every one of those mounts away, so nothing
  is ever mounted on the host.

In both cases paths are then walked with :class:`~dockyard.containers.inroot.Root`'s
fd-based, no-escape lookups.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import os
import secrets
import stat
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Callable

from ..lifecycle import State
from . import etcfiles
from .fsworkers import WORKERS
from .inroot import DIR_FLAGS, Root, open_below

log = logging.getLogger("dockyard.containers.fsview")

CLONE_FS, CLONE_NEWNS = 0x00000200, 0x00020000
MS_RDONLY, MS_REMOUNT, MS_BIND, MS_REC, MS_SLAVE = 0x1, 0x20, 0x1000, 0x4000, 0x80000

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.unshare.argtypes = [ctypes.c_int]


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


@dataclass
class View:
    """An open view: ``root`` for the path walks, ``user_root`` for reading the container's
    ``/etc/passwd`` (``docker cp -a``). :meth:`close` releases everything."""

    root: Root
    user_root: Path
    ns_fd: int = -1
    undo: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        self.root.close()
        if self.ns_fd >= 0:
            os.close(self.ns_fd)  # the last reference: the private namespace and its mounts go
            self.ns_fd = -1
        while self.undo:
            self.undo.pop()()


@contextlib.asynccontextmanager
async def opened(svc: Any, c: Any) -> AsyncIterator[View]:
    """The view of ``c`` that ``docker cp`` works on, for the duration (the caller holds one
    of ``c``'s :data:`~dockyard.containers.fsworkers.WORKERS` slots)."""
    async with svc.mounted(c) as rootfs:
        view = await WORKERS.run(_open, svc, c, Path(rootfs))
        try:
            yield view
        finally:
            await WORKERS.run(view.close)


def _open(svc: Any, c: Any, rootfs: Path) -> View:
    if c.state in (State.RUNNING, State.PAUSED) and c.pid:
        view = _running_view(c, rootfs)
        if view is not None:
            return view
    return _stopped_view(svc, c, rootfs)


# -- running: the container's own mount namespace ------------------------------------------------

def _running_view(c: Any, rootfs: Path) -> View | None:
    """``/proc/<pid>/root`` if it still is ``c``'s root (else None: it has just exited)."""
    try:
        fd = os.open(f"/proc/{c.pid}/root", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    st, expected = os.fstat(fd), os.stat(rootfs)
    if (st.st_dev, st.st_ino) != (expected.st_dev, expected.st_ino):
        os.close(fd)
        return None
    root = Root.from_fd(fd)
    allowed = {st.st_dev}
    for dest in _user_destinations(c):
        with contextlib.suppress(Exception):
            allowed.add(root.lstat(root.resolve(dest)).st_dev)
    root.allowed_devs = allowed
    root.mount_points = _mount_points(c.pid)
    return View(root, Path(f"/proc/{c.pid}/root"))


def _mount_points(pid: int) -> set[tuple[str, ...]]:
    """Every mount point in ``pid``'s mount namespace, as components below its root."""
    out = set()
    try:
        with open(f"/proc/{pid}/mountinfo", "rb") as f:
            for line in f:
                point = line.split(b" ")[4].decode("unicode_escape").encode("latin-1").decode(errors="surrogateescape")
                parts = tuple(p for p in point.split("/") if p)
                if parts:
                    out.add(parts)
    except OSError:
        pass
    return out


def _user_destinations(c: Any) -> list[str]:
    """Where the container has mounts of its own (not the runtime's /proc, /sys, /dev)."""
    dests = [p["Destination"] for p in c.mounts if p.get("Type") in ("volume", "bind", "tmpfs")]
    dests += list((c.host_config.get("Tmpfs") or {}).keys())
    dests += [f"/etc/{name}" for name in etcfiles.NAMES]
    return dests


# -- stopped: a private mount namespace ---------------------------------------------------------

def _stopped_view(svc: Any, c: Any, rootfs: Path) -> View:
    undo: list[Callable[[], None]] = []
    try:
        binds = _binds(svc, c, undo)
        if not binds:  # nothing to mount: the layer is the whole view
            return View(Root(rootfs), rootfs)
        root, ns_fd = _in_new_thread(lambda: _private_namespace(rootfs, binds))
    except BaseException:
        while undo:
            undo.pop()()
        raise
    return View(root, rootfs, ns_fd, undo)


def _binds(svc: Any, c: Any, undo: list[Callable[[], None]]) -> list[tuple[str, str, bool]]:
    """(host source, destination, rw) for each volume and bind of ``c`` (volumes attached
    through their driver under a reference of this copy's own), parents first."""
    volumes = getattr(svc.daemon, "volumes", None)
    ref = f"{c.id}-archive-{secrets.token_hex(4)}"
    out = []
    for point in c.mounts:
        kind, dest = point.get("Type"), point.get("Destination", "")
        if kind == "volume" and volumes is not None and point.get("Name") in volumes.records:
            source = volumes.attach(point["Name"], ref)
            undo.append(functools.partial(volumes.unmount, point["Name"], ref))
        elif kind == "bind":
            source = point.get("Source", "")
        else:
            continue  # tmpfs: empty while the container is stopped, as in Docker
        if os.path.exists(source):
            out.append((source, dest, bool(point.get("RW", True))))
    if c.has_been_started:  # Docker sets these up at the first start
        directory = svc.dir(c)
        for name, path in etcfiles.paths(directory).items():
            if path.exists():
                out.append((str(path), f"/etc/{name}", not c.host_config.get("ReadonlyRootfs")))
    out.sort(key=lambda b: b[1].rstrip("/").count("/"))
    return out


def _in_new_thread(fn: Callable[[], Any]) -> Any:
    """``fn()`` in a thread of its own: unsharing the mount namespace changes the calling
    thread for good, so it must never be a pool worker."""
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            result["error"] = exc

    t = threading.Thread(target=run, name="dockyard-archive-view", daemon=True)
    t.start()
    t.join()
    if "error" in result:
        raise result["error"]
    return result["value"]


def _private_namespace(rootfs: Path, binds: list[tuple[str, str, bool]]) -> tuple[Root, int]:
    _check(_libc.unshare(CLONE_NEWNS | CLONE_FS), "unshare")
    # nothing mounted here may propagate to the host's mounts
    _check(_libc.mount(None, b"/", None, MS_REC | MS_SLAVE, None), "make / rslave")
    root = Root(rootfs)
    try:
        for source, dest, rw in binds:
            try:
                if (parts := _bind(root, source, dest, rw)) is not None:
                    root.mount_points.add(tuple(parts))
            except OSError as exc:
                raise OSError(exc.errno, f"mounting {source} at {dest} for the copy: {exc.strerror}") from None
        ns_fd = os.open("/proc/thread-self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    except BaseException:
        root.close()
        raise
    return root, ns_fd


def _bind(root: Root, source: str, dest: str, rw: bool) -> list[str] | None:
    """Bind ``source`` over ``dest`` of ``root`` (resolved in the root's scope; a missing
    mount point is created like Docker's ``CreateIfNotExists``); where it was mounted."""
    parts = root.resolve(dest)
    if not parts:
        return None
    is_dir = os.path.isdir(source)
    parent = _make_dirs(root.fd, parts[:-1])
    try:
        try:
            st = os.lstat(parts[-1], dir_fd=parent)
        except FileNotFoundError:
            if is_dir:
                os.mkdir(parts[-1], 0o755, dir_fd=parent)
            else:
                os.close(os.open(parts[-1], os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC,
                                 0o755, dir_fd=parent))
        else:
            if stat.S_ISDIR(st.st_mode) != is_dir:
                log.warning("not mounting %s at %s for a copy: one is a directory, the other not", source, dest)
                return None
        _mount_at(parent, parts[-1], source.encode(), None, MS_BIND | MS_REC)
        if not rw:
            _mount_at(parent, parts[-1], None, None, MS_BIND | MS_REMOUNT | MS_RDONLY)
    finally:
        os.close(parent)
    return parts


def _mount_at(parent: int, name: str, source: bytes | None, fstype: bytes | None, flags: int) -> None:
    """mount(2) on ``name`` in ``parent``, named to the kernel through an ``O_PATH`` fd opened
    without following a symlink (after a bind, the fd is the new mount's root)."""
    fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
    try:
        _check(_libc.mount(source, f"/proc/self/fd/{fd}".encode(), fstype, flags, None), f"mount {name}")
    finally:
        os.close(fd)


def _make_dirs(root_fd: int, parts: list[str]) -> int:
    """An fd of the directory ``parts`` below ``root_fd``, missing components created."""
    fd = open_below(root_fd, [])
    try:
        for part in parts:
            try:
                nfd = os.open(part, DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                os.mkdir(part, 0o755, dir_fd=fd)
                nfd = os.open(part, DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = nfd
    except BaseException:
        os.close(fd)
        raise
    return fd
