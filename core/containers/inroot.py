"""Paths inside a container's root filesystem, resolved as if that root were ``/``.

Every lookup goes through directory fds opened with ``O_NOFOLLOW`` one component at a time,
and symlinks are read and resolved in the root's scope (moby's ``FollowSymlinkInScope``): a
symlink in an image pointing at ``/etc`` names the image's ``/etc``, never the host's.
``docker cp``, mount targets, volume copy-up and the image's passwd/group all use this.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Any

from ..errors import InvalidArgument
from ..safeopen import read_regular

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
MAX_SYMLINKS = 255


def _split(path: str) -> list[str]:
    return [p for p in path.split("/") if p not in ("", ".")]


def fd_path(dir_fd: int, name: str = ".") -> str:
    """A path naming ``name`` in ``dir_fd``: the kernel follows only the fd's magic link."""
    return f"/proc/self/fd/{dir_fd}/{name}"


class Root:
    """A container's root filesystem, held by an fd; lookups never leave it.

    ``allowed_devs``, when set, are the only filesystems (``st_dev``) whose directories a
    lookup may enter: a running container's root seen through ``/proc/<pid>/root`` also has
    the runtime's ``/proc``, ``/sys`` and ``/dev`` mounted, which ``docker cp`` must not read
    or write. Only directories are checked: overlayfs may report a lower layer's ``st_dev``
    for files, and every file of those filesystems is below one of their directories.
    """

    def __init__(self, path: Path | str, *, fd: int | None = None) -> None:
        # the root itself may be a (magic) link such as /proc/<pid>/root: only what is below it is
        # looked up without following links
        self.fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC) if fd is None else fd
        self.allowed_devs: set[int] | None = None
        # mount points of the view (components below the root): in a namespace other than
        # the daemon's, unlink(2) would not fail with EBUSY on them but silently detach them
        self.mount_points: set[tuple[str, ...]] = set()

    @classmethod
    def from_fd(cls, fd: int) -> "Root":
        """A root held by an already open directory fd (which the root now owns)."""
        return cls("", fd=fd)

    def allows(self, st: os.stat_result) -> bool:
        return allowed(st, self.allowed_devs)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> "Root":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def open_dir(self, parts: list[str] | tuple[str, ...]) -> int:
        """A new fd of the directory ``parts`` (no symlink followed); OSError if it is not one."""
        return open_below(self.fd, parts, self.allowed_devs)

    def resolve(self, path: str, follow_last: bool = True) -> list[str]:
        """``path`` as components below the root, symlinks resolved in the root's scope
        (``FollowSymlinkInScope``); missing components are kept as they are."""
        todo = _split(path)
        done: list[str] = []
        hops = 0
        while todo:
            part = todo.pop(0)
            if part == "..":
                if done:
                    done.pop()
                continue
            if not todo and not follow_last:
                done.append(part)
                break
            target = None
            try:
                dfd = self.open_dir(done)
            except OSError:
                done.append(part)  # below a missing or non-directory component: lexical
                continue
            try:
                if stat.S_ISLNK(os.lstat(part, dir_fd=dfd).st_mode):
                    target = os.readlink(part, dir_fd=dfd)
            except OSError:
                pass
            finally:
                os.close(dfd)
            if target is None:
                done.append(part)
                continue
            hops += 1
            if hops > MAX_SYMLINKS:
                raise InvalidArgument(f"too many levels of symbolic links in {path}")
            if target.startswith("/"):
                done = []
            todo = _split(target) + todo
        return done

    def lstat(self, parts: list[str]) -> os.stat_result:
        if not parts:
            return os.fstat(self.fd)
        dfd = self.open_dir(parts[:-1])
        try:
            st = os.lstat(parts[-1], dir_fd=dfd)
        finally:
            os.close(dfd)
        if not self.allows(st):
            raise FileNotFoundError(errno.ENOENT, "on a filesystem docker cp does not enter", "/".join(parts))
        return st


def allowed(st: os.stat_result, allowed_devs: set[int] | None) -> bool:
    """False for a directory on a filesystem not in ``allowed_devs`` (see :class:`Root`)."""
    return allowed_devs is None or not stat.S_ISDIR(st.st_mode) or st.st_dev in allowed_devs


def open_below(root_fd: int, parts: list[str] | tuple[str, ...], allowed_devs: set[int] | None = None) -> int:
    """A new fd of the directory ``parts`` below ``root_fd``, each component opened with
    ``O_NOFOLLOW``; with ``allowed_devs``, a component on another filesystem is missing."""
    fd = os.open(".", DIR_FLAGS, dir_fd=root_fd)
    try:
        for part in parts:
            nfd = os.open(part, DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = nfd
            if allowed_devs is not None and os.fstat(fd).st_dev not in allowed_devs:
                raise FileNotFoundError(errno.ENOENT, "on a filesystem docker cp does not enter", part)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_in_root(root: Path | str, path: str, limit: int = 16 << 20) -> bytes:
    """At most ``limit`` bytes of the regular file ``path`` inside ``root`` (symlinks resolved
    in the root's scope). Read through fds only, so the container cannot redirect it by
    swapping a component; a FIFO, device or socket is never opened (OSError, ``EINVAL``)."""
    with Root(root) as r:
        parts = r.resolve(path)
        if not parts:
            raise IsADirectoryError(errno.EISDIR, "is a directory", path)
        dfd = r.open_dir(parts[:-1])
        try:
            return read_regular(parts[-1], dfd, limit)
        finally:
            os.close(dfd)


def resolve_in_root(root: Path, path: str) -> Path:
    """``path`` inside ``root`` with every symlink resolved as if ``root`` were ``/``."""
    with Root(root) as r:
        return Path(root).joinpath(*r.resolve(path))

