"""Container network namespaces as nsfs bind mounts (``<exec-root>/netns/<container id>``).

A namespace is made in a short-lived thread of its own: the thread unshares its network
namespace, brings ``lo`` up, bind-mounts ``/proc/thread-self/ns/net`` onto the file and exits,
so no thread of the daemon is ever left in a container's namespace (``setns``/``unshare``
for the network namespace act on the calling thread only). :func:`run_in` uses the same
trick to open netlink sockets inside a namespace: a socket stays bound to the namespace it
was created in, so the caller can use it from any thread afterwards.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import socket
import struct
import threading
from pathlib import Path
from typing import Any, Callable, TypeVar

CLONE_NEWNET = 0x40000000
MS_BIND = 4096
MNT_DETACH = 2
SIOCGIFFLAGS, SIOCSIFFLAGS = 0x8913, 0x8914
IFF_UP = 0x1

_libc = ctypes.CDLL(None, use_errno=True)
T = TypeVar("T")


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _in_thread(fn: Callable[[], T]) -> T:
    """Run ``fn`` in a new OS thread that exits afterwards; return its result or raise."""
    out: dict[str, Any] = {}

    def body() -> None:
        try:
            out["value"] = fn()
        except BaseException as exc:  # handed to the caller
            out["error"] = exc

    t = threading.Thread(target=body, name="dockyard-netns")
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    return out["value"]


def lo_up() -> None:
    """Bring ``lo`` up in the calling thread's network namespace."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))


def create(path: Path) -> None:
    """A new network namespace with ``lo`` up, pinned at ``path``. An existing one at
    ``path`` is replaced."""
    path.parent.mkdir(parents=True, exist_ok=True)
    remove(path)

    def make() -> None:
        _check(_libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
        lo_up()
        os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444))
        try:
            _check(_libc.mount(b"/proc/thread-self/ns/net", str(path).encode(), None, MS_BIND, None),
                   f"bind mount of a network namespace on {path}")
        except BaseException:
            os.unlink(path)
            raise

    _in_thread(make)


def remove(path: Path) -> None:
    """Unmount and delete a pinned namespace; missing is fine. The namespace itself goes away
    with its last user (the kernel deletes its veths then)."""
    while _libc.umount2(str(path).encode(), MNT_DETACH) == 0:
        pass  # stacked mounts from an interrupted create
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def is_mounted(path: Path) -> bool:
    try:
        with open("/proc/self/mountinfo") as f:
            target = str(path)
            return any(line.split()[4] == target for line in f)
    except OSError:
        return False


def run_in(path: str | Path, fn: Callable[[], T]) -> T:
    """Call ``fn`` inside the network namespace at ``path`` (a pinned file or
    ``/proc/<pid>/ns/net``), in a thread of its own."""

    def body() -> T:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            _check(_libc.setns(fd, CLONE_NEWNET), f"setns({path})")
        finally:
            os.close(fd)
        return fn()

    return _in_thread(body)


def mounted_under(directory: Path) -> list[Path]:
    """Every namespace pinned directly under ``directory`` (for reconciliation)."""
    prefix = str(directory).rstrip("/") + "/"
    found = []
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                target = line.split()[4]
                if target.startswith(prefix) and "/" not in target[len(prefix):]:
                    found.append(Path(target))
    except OSError:
        pass
    return found


__all__ = ["create", "remove", "run_in", "is_mounted", "mounted_under", "lo_up", "errno"]
