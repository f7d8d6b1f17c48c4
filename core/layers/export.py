"""Export of layers and directories as deterministic tars, whiteouts converted.

:func:`tar_stream` writes a tar from a directory walk in sorted order (PAX format, whole-second
mtimes, no user/group names, two zero blocks at the end): the same content gives the same bytes.
"""

from __future__ import annotations

import errno
import os
import stat
import tarfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import DockyardError
from ..safeopen import open_regular
from ..userns import to_container_ids
from .tarfmt import BLOCK, CHUNK, XATTR_PAX_PREFIX
from .whiteouts import OPAQUE, WHITEOUT_PREFIX


@dataclass
class Entry:
    """One member to write: ``path`` is the file on disk (None for a synthesized whiteout)."""

    name: str
    path: Path | None
    st: os.stat_result | None = None
    whiteout: bool = False  # an empty regular file (``.wh.x`` or ``.wh..wh..opq``)


def tar_info(name: str, st: os.stat_result | None, path: Path | None, fd: int | None = None) -> tarfile.TarInfo:
    """The header of ``name``; xattrs are read from ``fd`` when given (the opened file),
    else from ``path`` (never followed)."""
    info = tarfile.TarInfo(name)
    info.uname = info.gname = ""
    if st is None:  # whiteout marker
        info.mode, info.mtime = 0o600, 0
        return info
    info.uid, info.gid = to_container_ids(st.st_uid, st.st_gid)  # --userns-remap: shifted back
    info.mtime = int(st.st_mtime)
    info.mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
    elif stat.S_ISLNK(st.st_mode):
        info.type, info.linkname = tarfile.SYMTYPE, os.readlink(path)
    elif stat.S_ISREG(st.st_mode):
        info.size = st.st_size
    elif stat.S_ISFIFO(st.st_mode):
        info.type = tarfile.FIFOTYPE
    elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        info.type = tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else tarfile.BLKTYPE
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    else:
        raise DockyardError(f"cannot export {path}: unsupported file type")
    target: int | Path | None = fd if fd is not None else path
    if target is not None and not stat.S_ISLNK(st.st_mode):
        for attr in _list_xattrs(target):
            if not attr.startswith("trusted."):
                try:
                    value = os.getxattr(target, attr) if fd is not None else \
                        os.getxattr(target, attr, follow_symlinks=False)
                except OSError as exc:
                    if exc.errno == errno.ENODATA:
                        continue  # removed meanwhile
                    raise
                info.pax_headers[XATTR_PAX_PREFIX + attr] = value.decode("utf-8", "surrogateescape")
    return info


def _list_xattrs(target: int | Path) -> list[str]:
    try:
        if isinstance(target, int):
            return sorted(os.listxattr(target))
        return sorted(os.listxattr(target, follow_symlinks=False))
    except OSError:
        return []


def tar_stream(entries: Iterable[Entry]) -> Iterator[bytes]:
    """A deterministic uncompressed tar of ``entries`` (in the given order), in chunks.

    Files seen twice (same device and inode) become hard links to their first name. The
    tree may be a running container's, changing under us: a regular file is opened with
    :func:`~dockyard.safeopen.open_regular` before its header is written, and the header
    describes what was opened. A name swapped for a FIFO or a device meanwhile gets a header
    of that type and no content (as tar does); nothing is ever opened that could block.
    Sockets and names that vanished are left out.
    """
    seen: dict[tuple[int, int], str] = {}
    for e in entries:
        fd = None
        try:
            st = None if e.whiteout else (e.st or os.lstat(e.path))  # type: ignore[arg-type]
            if st is not None and stat.S_ISREG(st.st_mode):
                fd, st = open_regular(e.path)  # type: ignore[arg-type]
        except (FileNotFoundError, NotADirectoryError):
            continue  # removed while exporting (a running container)
        try:
            if st is not None and stat.S_ISSOCK(st.st_mode):
                continue  # tar has no type for a socket
            try:
                info = tar_info(e.name, st, e.path, fd)
            except OSError as exc:  # changed before readlink: a symlink no more, or gone
                if fd is None and exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.EINVAL):
                    continue
                raise
            if st is not None and info.isreg() and st.st_nlink > 1:
                key = (st.st_dev, st.st_ino)
                if key in seen:
                    info.type, info.linkname, info.size = tarfile.LNKTYPE, seen[key], 0
                else:
                    seen[key] = e.name
            yield info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
            if info.isreg() and info.size and fd is not None:
                yield from _file_blocks(fd, info.size)
        finally:
            if fd is not None:
                os.close(fd)
    yield b"\0" * (2 * BLOCK)


def _file_blocks(fd: int, size: int) -> Iterator[bytes]:
    """The first ``size`` bytes of the open file ``fd`` (zero-filled if it shrank), padded to a block."""
    left = size
    while left > 0:
        chunk = os.read(fd, min(CHUNK, left)) or b"\0" * min(CHUNK, left)
        left -= len(chunk)
        yield chunk
    if size % BLOCK:
        yield b"\0" * (BLOCK - size % BLOCK)


Classifier = Callable[[Path, os.stat_result], str | None]


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def _fd_path(dir_fd: int, name: str) -> Path:
    """``name`` in ``dir_fd``, named to the kernel through the fd (no component of the
    directory's path is looked up again)."""
    return Path(f"/proc/self/fd/{dir_fd}/{name}")


def walk_entries(root: Path, classify: Classifier | None = None, prefix: str = "") -> Iterator[Entry]:
    """Entries for everything under ``root`` in sorted order, parents before children.

    With ``classify`` (e.g. :func:`overlay_whiteout`), whiteout files become ``.wh.name``
    entries and opaque dirs get a ``dir/.wh..wh..opq`` entry right after the dir.

    The tree may be a running container's layer (``docker commit --pause=false``): every
    directory below ``root`` is opened with ``O_NOFOLLOW`` relative to its parent's fd, and
    entries name their files through those fds, so a directory swapped for a symlink is never
    followed. Each entry is consumed before the next one is asked for (as :func:`tar_stream`
    does), while the fds its path goes through are open.
    """
    fd = os.open(root, _DIR_FLAGS)
    try:
        yield from _walk_fd(fd, classify, prefix)
    finally:
        os.close(fd)


def _walk_fd(dir_fd: int, classify: Classifier | None, prefix: str) -> Iterator[Entry]:
    with os.scandir(dir_fd) as it:
        items = sorted(it, key=lambda d: d.name)
    for d in items:
        path = _fd_path(dir_fd, d.name)
        try:
            st = d.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue  # removed meanwhile
        name = prefix + d.name
        kind = classify(path, st) if classify else None
        if kind == "whiteout":
            yield Entry(prefix + WHITEOUT_PREFIX + d.name, None, whiteout=True)
            continue
        yield Entry(name, path, st)
        if stat.S_ISDIR(st.st_mode):
            if kind == "opaque":
                yield Entry(name + "/" + OPAQUE, None, whiteout=True)
            try:
                sub = os.open(d.name, _DIR_FLAGS, dir_fd=dir_fd)
            except (FileNotFoundError, NotADirectoryError):
                continue
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    continue  # swapped for a symlink since: never followed
                raise
            try:
                yield from _walk_fd(sub, classify, name + "/")
            finally:
                os.close(sub)


def export_dir(root: Path, classify: Classifier | None = None) -> Iterator[bytes]:
    """The tar of a whole directory (a layer's diff), whiteouts converted by ``classify``."""
    return tar_stream(walk_entries(root, classify))


def export_changes(root: Path, changes: list[dict]) -> Iterator[bytes]:
    """A tar of ``changes`` (Docker ``Change`` dicts, parents first) taken from ``root``;
    deletions become whiteouts. Each path is reached through directory fds opened with
    ``O_NOFOLLOW`` (``root`` may be a running container's)."""
    return tar_stream(_change_entries(root, changes))


def _change_entries(root: Path, changes: list[dict]) -> Iterator[Entry]:
    root_fd = os.open(root, _DIR_FLAGS)
    try:
        for c in changes:
            rel = c["Path"].lstrip("/")
            head, _, tail = rel.rpartition("/")
            if c["Kind"] == 2:
                yield Entry((head + "/" if head else "") + WHITEOUT_PREFIX + tail, None, whiteout=True)
                continue
            try:
                fd = _open_dirs(root_fd, [p for p in head.split("/") if p])
            except OSError:
                continue  # a parent is gone or no longer a directory
            try:
                yield Entry(rel, _fd_path(fd, tail))
            finally:
                os.close(fd)
    finally:
        os.close(root_fd)


def _open_dirs(root_fd: int, parts: list[str]) -> int:
    fd = os.dup(root_fd)
    try:
        for part in parts:
            nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = nfd
    except BaseException:
        os.close(fd)
        raise
    return fd
