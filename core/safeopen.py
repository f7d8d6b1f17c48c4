"""Opening files a container controls without ever blocking on them.

A process in a container can swap any name of its filesystem for a FIFO, a device node or a
socket between our ``lstat`` and our ``open`` (``renameat2(RENAME_EXCHANGE)`` does it
atomically). ``open(O_RDONLY)`` of a FIFO blocks until a writer comes, forever if none does,
and opening a device node may act on the host's device. So a name is first opened with
``O_PATH | O_NOFOLLOW`` (which opens nothing: no FIFO wait, no driver ``open``), the type is
taken from ``fstat`` of *that* fd, and only a regular file is then reopened for reading
through ``/proc/self/fd/N`` (the same inode, whatever the name points at by then).
"""

from __future__ import annotations

import errno
import os
import stat

_PATH_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


def open_regular(name: str | os.PathLike[str], dir_fd: int | None = None) -> tuple[int | None, os.stat_result]:
    """``(fd, st)``: ``fd`` open for reading if ``name`` (never followed if a symlink) is a
    regular file, else None; ``st`` is the ``fstat`` of what was opened, so the caller's
    header, size and type are those of the bytes it reads. OSError as ``os.open``."""
    pfd = os.open(name, _PATH_FLAGS, dir_fd=dir_fd)
    try:
        st = os.fstat(pfd)
        if not stat.S_ISREG(st.st_mode):
            return None, st
        return os.open(f"/proc/self/fd/{pfd}", _READ_FLAGS), st
    finally:
        os.close(pfd)


def read_regular(name: str | os.PathLike[str], dir_fd: int | None = None, limit: int = 16 << 20) -> bytes:
    """At most ``limit`` bytes of the regular file ``name``; anything else (a FIFO, a device,
    a directory, a symlink) raises OSError (``EISDIR`` for a directory, else ``EINVAL``)
    without being opened."""
    fd, st = open_regular(name, dir_fd)
    if fd is None:
        code = errno.EISDIR if stat.S_ISDIR(st.st_mode) else errno.EINVAL
        raise OSError(code, f"{os.fspath(name)} is not a regular file")
    try:
        out = bytearray()
        while len(out) < limit and (chunk := os.read(fd, min(1 << 20, limit - len(out)))):
            out += chunk
        return bytes(out)
    finally:
        os.close(fd)
