"""A shareable container's ``/dev/shm`` lives on the host, as Docker keeps it
(``<container dir>/mounts/shm``, a tmpfs of ``ShmSize``), and is bound into the container;
``--ipc container:X`` binds X's, so POSIX shared memory (``shm_open``) is shared along with
X's IPC namespace (SysV IPC), as in a Kubernetes pod whose containers join the sandbox's.
``--ipc host`` binds the host's ``/dev/shm`` (dockyard.containers.startopts.shm_mounts).
The host tmpfs is unmounted when the container stops; a container that joined it keeps its
own reference to the same filesystem until it stops too."""

from __future__ import annotations

import ctypes
import errno
import logging
import os
from pathlib import Path
from typing import Any

from ..drivers.runtime import Mount

log = logging.getLogger("dockyard.containers.shm")
_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
MS_NOSUID, MS_NODEV, MS_NOEXEC = 2, 4, 8
MNT_DETACH = 2
DEFAULT_SIZE = 64 * 1024 * 1024


def host_dir(svc: Any, c: Any) -> Path:
    return svc.dir(c) / "mounts" / "shm"


def _mounted(path: Path) -> bool:
    try:
        return os.path.ismount(path)
    except OSError:
        return False


def setup(svc: Any, c: Any) -> list[Mount]:
    """The /dev/shm bind for ``c``: its own host tmpfs when shareable, X's under container:X."""
    mode = c.host_config.get("IpcMode") or ""
    if mode == "shareable":
        d = host_dir(svc, c)
        if not _mounted(d):
            d.mkdir(parents=True, exist_ok=True)
            size = int(c.host_config.get("ShmSize") or DEFAULT_SIZE)
            if _libc.mount(b"shm", str(d).encode(), b"tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                           f"mode=1777,size={size}".encode()) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"mounting the shm of {c.id[:12]}: {os.strerror(err)}")
        return [Mount(str(d), "/dev/shm", "bind", ["rbind", "rprivate"])]
    if mode.startswith("container:"):
        try:
            other = svc.get(mode.split(":", 1)[1])
        except Exception:
            return []  # the namespace join reports it
        other_mode = other.host_config.get("IpcMode") or ""
        if other_mode == "host":
            return [Mount("/dev/shm", "/dev/shm", "bind", ["rbind", "rprivate"])]
        d = host_dir(svc, other)
        if other_mode == "shareable" and _mounted(d):
            return [Mount(str(d), "/dev/shm", "bind", ["rbind", "rprivate"])]
    return []


def release(svc: Any, c: Any) -> None:
    """The container stopped: its host shm goes (as Docker's UnmountIpcMounts)."""
    if (c.host_config.get("IpcMode") or "") != "shareable":
        return  # only a shareable one has a host shm (setup)
    d = host_dir(svc, c)
    if _mounted(d):
        if _libc.umount2(str(d).encode(), MNT_DETACH) != 0 and ctypes.get_errno() not in (errno.EINVAL, errno.ENOENT):
            log.warning("cannot unmount %s: %s", d, os.strerror(ctypes.get_errno()))
