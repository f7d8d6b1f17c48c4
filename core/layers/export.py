"""Export of layers and directories as deterministic tars, whiteouts converted.

:func:`tar_stream` writes a tar from a directory walk in sorted order (PAX format, whole-second
mtimes, no user/group names, two zero blocks at the end): the same content gives the same bytes.
"""

from __future__ import annotations

import os
import stat
import tarfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import DockyardError
from .tarfmt import BLOCK, CHUNK, XATTR_PAX_PREFIX
from .whiteouts import OPAQUE, WHITEOUT_PREFIX


@dataclass
class Entry:
    """One member to write: ``path`` is the file on disk (None for a synthesized whiteout)."""

    name: str
    path: Path | None
    st: os.stat_result | None = None
    whiteout: bool = False  # an empty regular file (``.wh.x`` or ``.wh..wh..opq``)


def tar_info(name: str, st: os.stat_result | None, path: Path | None) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.uname = info.gname = ""
    if st is None:  # whiteout marker
        info.mode, info.mtime = 0o600, 0
        return info
    info.uid, info.gid, info.mtime = st.st_uid, st.st_gid, int(st.st_mtime)
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
    if path is not None and not stat.S_ISLNK(st.st_mode):
        for attr in _list_xattrs(path):
            if not attr.startswith("trusted."):
                value = os.getxattr(path, attr, follow_symlinks=False)
                info.pax_headers[XATTR_PAX_PREFIX + attr] = value.decode("utf-8", "surrogateescape")
    return info


def _list_xattrs(path: Path) -> list[str]:
    try:
        return sorted(os.listxattr(path, follow_symlinks=False))
    except OSError:
        return []


def tar_stream(entries: Iterable[Entry]) -> Iterator[bytes]:
    """A deterministic uncompressed tar of ``entries`` (in the given order), in chunks.

    Files seen twice (same device and inode) become hard links to their first name.
    """
    seen: dict[tuple[int, int], str] = {}
    for e in entries:
        try:
            st = None if e.whiteout else (e.st or os.lstat(e.path))
        except FileNotFoundError:
            continue  # removed while exporting (a running container)
        info = tar_info(e.name, st, e.path)
        if st is not None and info.isreg() and st.st_nlink > 1:
            key = (st.st_dev, st.st_ino)
            if key in seen:
                info.type, info.linkname, info.size = tarfile.LNKTYPE, seen[key], 0
            else:
                seen[key] = e.name
        yield info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
        if info.isreg() and info.size:
            yield from _file_blocks(e.path, info.size)
    yield b"\0" * (2 * BLOCK)


def _file_blocks(path: Path, size: int) -> Iterator[bytes]:
    """The file's first ``size`` bytes (zero-filled if it shrank), padded to a block."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        left = size
        while left > 0:
            chunk = os.read(fd, min(CHUNK, left)) or b"\0" * min(CHUNK, left)
            left -= len(chunk)
            yield chunk
    finally:
        os.close(fd)
    if size % BLOCK:
        yield b"\0" * (BLOCK - size % BLOCK)


Classifier = Callable[[Path, os.stat_result], str | None]


def walk_entries(root: Path, classify: Classifier | None = None, prefix: str = "") -> Iterator[Entry]:
    """Entries for everything under ``root`` in sorted order, parents before children.

    With ``classify`` (e.g. :func:`overlay_whiteout`), whiteout files become ``.wh.name``
    entries and opaque dirs get a ``dir/.wh..wh..opq`` entry right after the dir.
    """
    with os.scandir(root) as it:
        items = sorted(it, key=lambda d: d.name)
    for d in items:
        path = Path(d.path)
        st = d.stat(follow_symlinks=False)
        name = prefix + d.name
        kind = classify(path, st) if classify else None
        if kind == "whiteout":
            yield Entry(prefix + WHITEOUT_PREFIX + d.name, None, whiteout=True)
            continue
        yield Entry(name, path, st)
        if stat.S_ISDIR(st.st_mode):
            if kind == "opaque":
                yield Entry(name + "/" + OPAQUE, None, whiteout=True)
            yield from walk_entries(path, classify, name + "/")


def export_dir(root: Path, classify: Classifier | None = None) -> Iterator[bytes]:
    """The tar of a whole directory (a layer's diff), whiteouts converted by ``classify``."""
    return tar_stream(walk_entries(root, classify))


def export_changes(root: Path, changes: list[dict]) -> Iterator[bytes]:
    """A tar of ``changes`` (Docker ``Change`` dicts, parents first) taken from ``root``;
    deletions become whiteouts."""
    entries = []
    for c in changes:
        rel = c["Path"].lstrip("/")
        if c["Kind"] == 2:
            head, _, tail = rel.rpartition("/")
            entries.append(Entry((head + "/" if head else "") + WHITEOUT_PREFIX + tail, None, whiteout=True))
        else:
            entries.append(Entry(rel, root / rel))
    return tar_stream(entries)

