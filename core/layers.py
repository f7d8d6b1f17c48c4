"""Layer tars for storage drivers: safe extraction, deterministic export, tree changes.

Layer tars are hostile input. :func:`extract` streams a tar (``mode="r|"``) into a directory
and refuses the whole stream with :class:`InvalidArgument` (naming the member) on:

* absolute names or ``..`` components (in names and hard-link targets);
* hard links whose target was not extracted earlier from the same stream;
* any path whose parent components are not real directories inside the layer: every parent
  is opened with ``O_NOFOLLOW | O_DIRECTORY`` relative to its own parent's fd, so a member
  ``link/file`` under a symlink ``link`` is refused, never followed;
* char/block devices unless ``allow_devices`` (FIFOs are plain data and allowed);
* truncated or corrupt streams.

Symlinks are data: their targets may point anywhere, they are created and never followed.
Whiteouts (``.wh.name``, ``.wh..wh..opq``) are handed to a :class:`WhiteoutStrategy`, so
overlay (char device 0/0, opaque xattr) and copy-based drivers (delete) differ only there.
The caller removes the partially extracted directory when :func:`extract` raises.

:func:`tar_stream` writes a tar from a directory walk in sorted order (PAX format, whole-second
mtimes, no user/group names, two zero blocks at the end): the same content gives the same bytes.
:func:`tree_changes` compares two directory trees as Docker's naive diff does.
"""

from __future__ import annotations

import errno
import gzip
import os
import re
import secrets
import shutil
import stat
import struct
import subprocess
import tarfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from .errors import ConfigError, Conflict, DockyardError, InvalidArgument, NotFound

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
OPAQUE = ".wh..wh..opq"
OVERLAY_OPAQUE_XATTR = "trusted.overlay.opaque"
XATTR_PAX_PREFIX = "SCHILY.xattr."
CHUNK = 1 << 20
BLOCK = tarfile.BLOCKSIZE
READ_SIZE = 256 << 10  # tarfile's stream reads (its default 10 KiB makes big files slow)
TRAILING_LIMIT = 16 << 20  # bytes accepted after the end-of-archive blocks

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
# errnos meaning "a parent component is not a real directory": refuse, do not follow
_NOT_A_DIR = {errno.ELOOP, errno.ENOTDIR, errno.EMLINK}
# errnos a tar's content can cause (names, types, links): reported as a bad tar
_CONTENT_ERRNOS = {errno.ENOENT, errno.EEXIST, errno.EPERM, errno.ENOTDIR, errno.EISDIR,
                   errno.ELOOP, errno.EINVAL, errno.ENAMETOOLONG, errno.ENOTEMPTY, errno.EMLINK}


class WhiteoutStrategy(Protocol):
    """How a driver records deletions while a layer is extracted.

    ``dir_fd`` is an fd of the (already safely opened) directory inside the layer;
    ``name`` is a single path component. ``keep`` holds names in that directory extracted
    earlier from the same stream (an opaque marker must not hide them).
    """

    def whiteout(self, dir_fd: int, name: str) -> None: ...

    def opaque(self, dir_fd: int, keep: set[str]) -> None: ...


class DeleteWhiteouts:
    """Copy-based drivers (vfs, fake): a whiteout deletes, an opaque marker empties the dir."""

    def whiteout(self, dir_fd: int, name: str) -> None:
        remove_at(dir_fd, name)

    def opaque(self, dir_fd: int, keep: set[str]) -> None:
        for name in os.listdir(dir_fd):
            if name not in keep:
                remove_at(dir_fd, name)


class OverlayWhiteouts:
    """overlayfs: a whiteout is a char device 0/0, an opaque dir has ``trusted.overlay.opaque=y``."""

    def whiteout(self, dir_fd: int, name: str) -> None:
        remove_at(dir_fd, name)
        os.mknod(name, stat.S_IFCHR | 0o000, os.makedev(0, 0), dir_fd=dir_fd)

    def opaque(self, dir_fd: int, keep: set[str]) -> None:
        os.setxattr(dir_fd, OVERLAY_OPAQUE_XATTR, b"y")


def remove_at(dir_fd: int, name: str) -> None:
    """Remove ``name`` in ``dir_fd`` whatever it is (a directory recursively); missing is fine."""
    try:
        st = os.lstat(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(name, dir_fd=dir_fd)
    else:
        os.unlink(name, dir_fd=dir_fd)


# -- extraction ---------------------------------------------------------------------------


def clean_name(name: str, what: str = "member") -> tuple[str, ...]:
    """Split a tar name into components; refuse absolute names and ``..``."""
    if name.startswith("/"):
        raise InvalidArgument(f"invalid layer tar: {what} {name!r} is an absolute path")
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if ".." in parts:
        raise InvalidArgument(f"invalid layer tar: {what} {name!r} contains '..'")
    if any("\0" in p for p in parts):
        raise InvalidArgument(f"invalid layer tar: {what} {name!r} contains a NUL byte")
    return parts


class _Extractor:
    def __init__(self, dest: Path, strategy: WhiteoutStrategy, allow_devices: bool, chown: bool):
        self.root_fd = os.open(dest, _DIR_FLAGS)
        self.strategy, self.allow_devices, self.chown = strategy, allow_devices, chown
        self.extracted: set[tuple[str, ...]] = set()   # every path created from this stream
        self.children: dict[tuple[str, ...], set[str]] = {}
        self.dirs: list[tuple[tuple[str, ...], tarfile.TarInfo]] = []  # mode/mtime set last
        self.cached: tuple[tuple[str, ...], int] | None = None
        self.size = 0
        self.members: set[tuple[str, ...]] = set()
        self.reproducible = True  # False once the stream rewrites or deletes its own members
        self.umask = _umask()
        self.uid, self.gid = os.geteuid(), os.getegid()
        # An empty, non-setgid ``dest``: every directory below is made here (mode 0o755/0o700
        # until finish()), so a new file is owned by our euid/egid and needs no fchown to them.
        st = os.fstat(self.root_fd)
        self.fresh = not st.st_mode & stat.S_ISGID and not os.listdir(self.root_fd)

    def close(self) -> None:
        self._drop_cache()
        os.close(self.root_fd)

    def _drop_cache(self) -> None:
        if self.cached is not None:
            os.close(self.cached[1])
            self.cached = None

    def parent_fd(self, parts: tuple[str, ...], member: str, create: bool = True) -> int:
        """An fd of directory ``parts``, creating missing components; never follows a symlink.

        The returned fd is owned by the cache (valid until the next call or invalidation).
        """
        if self.cached is not None and self.cached[0] == parts:
            return self.cached[1]
        self._drop_cache()
        fd = os.dup(self.root_fd)
        try:
            for i, comp in enumerate(parts):
                try:
                    nfd = os.open(comp, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    os.mkdir(comp, 0o755, dir_fd=fd)
                    self._record(parts[: i + 1])
                    nfd = os.open(comp, _DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    if exc.errno in _NOT_A_DIR:
                        raise InvalidArgument(
                            f"invalid layer tar: member {member!r}: "
                            f"{'/'.join(parts[: i + 1])!r} is not a directory (symlink?)") from None
                    raise
                os.close(fd)
                fd = nfd
        except BaseException:
            os.close(fd)
            raise
        self.cached = (parts, fd)
        return fd

    def _record(self, parts: tuple[str, ...]) -> None:
        self.extracted.add(parts)
        self.children.setdefault(parts[:-1], set()).add(parts[-1])

    def member(self, tf: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        """Extract one member; OS errors caused by the tar's content become InvalidArgument."""
        try:
            self._member(tf, m)
        except OSError as exc:
            if exc.errno in _CONTENT_ERRNOS:
                raise InvalidArgument(f"invalid layer tar: member {m.name!r}: {exc.strerror}") from None
            raise

    def _member(self, tf: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        parts = clean_name(m.name)
        if not parts:  # "." or "./": the layer root itself
            return
        dirparts, base = parts[:-1], parts[-1]
        if parts in self.members and not m.isdir():
            self.reproducible = False
        self.members.add(parts)
        if base.startswith(WHITEOUT_PREFIX):
            self.whiteout(m, dirparts, base)
            return
        if m.ischr() or m.isblk():
            if not self.allow_devices:
                raise InvalidArgument(f"invalid layer tar: member {m.name!r} is a device node")
        elif not (m.isreg() or m.isdir() or m.issym() or m.islnk() or m.isfifo()):
            raise InvalidArgument(f"invalid layer tar: member {m.name!r} has unsupported type {m.type!r}")
        tfd = None
        if m.islnk():
            target = clean_name(m.linkname, "hard link target of " + repr(m.name))
            if not target or target == parts or target not in self.extracted:
                raise InvalidArgument(
                    f"invalid layer tar: hard link {m.name!r} points to {m.linkname!r}, "
                    "which is not an earlier member of this layer")
            tfd = os.dup(self.parent_fd(target[:-1], m.name, create=False))
        try:
            self._create(tf, m, parts, tfd, target[-1] if tfd is not None else "")
        finally:
            if tfd is not None:
                os.close(tfd)
        self._record(parts)

    def _create(self, tf: tarfile.TarFile, m: tarfile.TarInfo, parts: tuple[str, ...],
                tfd: int | None, link_base: str) -> None:
        pfd = self.parent_fd(parts[:-1], m.name)
        base = parts[-1]
        if m.isreg():  # the common case first: O_EXCL create, no lstat unless the name exists
            try:
                fd = os.open(base, _FILE_FLAGS, self._open_mode(m), dir_fd=pfd)
            except FileExistsError:
                pass
            else:
                self.regular(tf, m, fd)
                return
        existing = _lstat_at(pfd, base)
        keep_dir = m.isdir() and existing is not None and stat.S_ISDIR(existing.st_mode)
        if existing is not None and not keep_dir:
            if stat.S_ISDIR(existing.st_mode):
                self._invalidate(parts)
                pfd = self.parent_fd(parts[:-1], m.name)
            remove_at(pfd, base)
        if m.isreg():
            self.regular(tf, m, os.open(base, _FILE_FLAGS, self._open_mode(m), dir_fd=pfd))
        elif m.isdir():
            if not keep_dir:
                os.mkdir(base, 0o700, dir_fd=pfd)
            self._own(m, pfd, base)
            self.dirs.append((parts, m))
        elif m.issym():
            os.symlink(m.linkname, base, dir_fd=pfd)
            self._own(m, pfd, base)
            self._times(m, pfd, base)
        elif m.islnk():
            if stat.S_ISDIR(os.lstat(link_base, dir_fd=tfd).st_mode):
                raise InvalidArgument(f"invalid layer tar: hard link {m.name!r} points to a directory")
            os.link(link_base, base, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)
        else:  # fifo or (allowed) device
            kind = {tarfile.FIFOTYPE: stat.S_IFIFO, tarfile.CHRTYPE: stat.S_IFCHR,
                    tarfile.BLKTYPE: stat.S_IFBLK}[m.type]
            os.mknod(base, kind | 0o600, os.makedev(m.devmajor, m.devminor), dir_fd=pfd)
            self._own(m, pfd, base)
            os.chmod(base, m.mode & 0o7777, dir_fd=pfd)
            self._times(m, pfd, base)

    def _invalidate(self, parts: tuple[str, ...]) -> None:
        """A directory is being replaced: forget the cached fd if it is at or under it."""
        if self.cached is not None and self.cached[0][: len(parts)] == parts:
            self._drop_cache()

    def whiteout(self, m: tarfile.TarInfo, dirparts: tuple[str, ...], base: str) -> None:
        if base == OPAQUE:
            pfd = self.parent_fd(dirparts, m.name)
            self.strategy.opaque(pfd, set(self.children.get(dirparts, ())))
            return
        if base.startswith(WHITEOUT_META_PREFIX):
            return  # other AUFS metadata (.wh..wh.plnk ...): ignored, as Docker does
        name = base[len(WHITEOUT_PREFIX):]
        if name in ("", ".", ".."):
            raise InvalidArgument(f"invalid layer tar: whiteout {m.name!r} names no file")
        pfd = self.parent_fd(dirparts, m.name)
        if dirparts + (name,) in self.extracted:
            self.reproducible = False
        self._invalidate(dirparts + (name,))
        self.strategy.whiteout(pfd, name)

    def _open_mode(self, m: tarfile.TarInfo) -> int:
        """The mode to create a file with: its final mode when ``open`` can give it exactly
        (no set-id/sticky bits, nothing masked by the umask), else 0o600 and a fchmod later."""
        mode = m.mode & 0o7777
        return mode if not mode & (0o7000 | self.umask) else 0o600

    def regular(self, tf: tarfile.TarFile, m: tarfile.TarInfo, fd: int) -> None:
        """Fill the new file ``fd`` (created by :meth:`_create`, closed here) from the stream."""
        try:
            left = m.size
            # A member's data is next in the stream: read it there, not through the file object
            # tf.extractfile makes per member (tarfile skips what is left of it afterwards).
            # Sparse members need tarfile's mapping.
            src = tf.extractfile(m) if m.issparse() else tf.fileobj
            while left > 0:
                chunk = src.read(min(CHUNK, left)) if src is not None else b""
                if not chunk:
                    raise InvalidArgument(f"invalid layer tar: member {m.name!r} is truncated")
                _write_all(fd, chunk)
                left -= len(chunk)
            self.size += m.size
            mode = m.mode & 0o7777
            if self.chown and not (self.fresh and m.uid == self.uid and m.gid == self.gid):
                os.fchown(fd, m.uid, m.gid)  # clears set-id bits: the fchmod comes after
            if self._open_mode(m) != mode:
                os.fchmod(fd, mode)
            if m.pax_headers:
                _set_xattrs(fd, m)
            os.utime(fd, ns=(_ns(m.mtime), _ns(m.mtime)))
        finally:
            os.close(fd)

    def _own(self, m: tarfile.TarInfo, pfd: int, base: str) -> None:
        if self.chown:
            os.chown(base, m.uid, m.gid, dir_fd=pfd, follow_symlinks=False)
        if not m.issym() and _xattrs(m):
            fd = os.open(base, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=pfd)
            try:
                _set_xattrs(fd, m)
            finally:
                os.close(fd)

    def _times(self, m: tarfile.TarInfo, pfd: int, base: str) -> None:
        os.utime(base, ns=(_ns(m.mtime), _ns(m.mtime)), dir_fd=pfd, follow_symlinks=False)

    def finish(self) -> None:
        """Directories' modes and mtimes last (writing children changes them), deepest first."""
        for parts, m in sorted(self.dirs, key=lambda d: len(d[0]), reverse=True):
            self._drop_cache()
            try:  # re-walked: still no symlink followed; a dir replaced later is skipped
                fd = self.parent_fd(parts, m.name, create=False)
            except (FileNotFoundError, InvalidArgument):
                continue
            os.fchmod(fd, m.mode & 0o7777)
            os.utime(fd, ns=(_ns(m.mtime), _ns(m.mtime)))


def _umask() -> int:
    """The process umask, read without changing it (``os.umask`` would race other threads)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o777  # unknown: always fchmod


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _ns(mtime: float) -> int:
    return int(mtime * 1_000_000_000)


def _lstat_at(dir_fd: int, name: str) -> os.stat_result | None:
    try:
        return os.lstat(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return None


def _xattrs(m: tarfile.TarInfo) -> dict[str, bytes]:
    out = {}
    for key, value in m.pax_headers.items():
        if key.startswith(XATTR_PAX_PREFIX):
            name = key[len(XATTR_PAX_PREFIX):]
            if name.startswith("trusted."):
                continue  # trusted.overlay.* would steer overlayfs: never from a tar
            out[name] = value.encode("utf-8", "surrogateescape")
    return out


def _set_xattrs(fd: int, m: tarfile.TarInfo) -> None:
    for name, value in _xattrs(m).items():
        try:
            os.setxattr(fd, name, value)
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EPERM, errno.EACCES, errno.EINVAL):
                raise


class _Recorder:
    """A file-like wrapper over the tar stream that keeps every byte it passes on except
    the content of regular files: with the files on disk, that reassembles the exact
    original stream (Docker's tar-split idea) without keeping a second copy of the data."""

    def __init__(self, src: BinaryIO) -> None:
        self.src, self.pos = src, 0
        # bytes kept but not yet recorded: self.pending[self.off:], starting at stream offset
        # self.pending_start (an index, so cutting a small header never copies the buffer)
        self.pending, self.off, self.pending_start = b"", 0, 0
        self.skip_to = 0
        self.records: list[tuple[str, bytes | str, int]] = []  # ("M", bytes, 0) / ("F", name, size)

    def read(self, n: int = -1) -> bytes:
        data = self.src.read(n)
        start = self.pos
        self.pos += len(data)
        kept = data
        if self.skip_to > start:
            drop = min(len(data), self.skip_to - start)
            kept, start = data[drop:], start + drop
        if kept:
            if self.off >= len(self.pending):
                self.pending, self.off, self.pending_start = kept, 0, start
            else:
                self.pending = self.pending[self.off:] + kept
                self.off = 0
        return data

    def _meta(self, data: bytes) -> None:
        if data:
            if self.records and self.records[-1][0] == "M":
                self.records[-1] = ("M", self.records[-1][1] + data, 0)
            else:
                self.records.append(("M", bytes(data), 0))

    def file(self, offset: int, size: int, name: str) -> None:
        """Member data at ``offset`` (already parsed, so its header is in ``pending``)."""
        cut = offset - self.pending_start
        self._meta(self.pending[self.off:self.off + cut])
        self.records.append(("F", name, size))
        available = len(self.pending) - self.off - cut
        taken = min(available, size)
        self.off += cut + taken
        self.pending_start = offset + taken
        self.skip_to = offset + size

    def finish(self, limit: int = TRAILING_LIMIT) -> None:
        """Read what follows the end-of-archive blocks (padding) and keep it."""
        start = self.pos
        while self.read(CHUNK):
            if self.pos - start > limit:
                raise InvalidArgument("invalid layer tar: too much data after the end of the archive")
        self._meta(self.pending[self.off:])
        self.pending, self.off = b"", 0


def _write_split(path: Path, records: list) -> None:
    with gzip.open(path, "wb", compresslevel=1) as f:
        for kind, value, size in records:
            if kind == "M":
                f.write(b"M" + struct.pack("<Q", len(value)) + value)
            else:
                name = value.encode("utf-8", "surrogateescape")
                f.write(b"F" + struct.pack("<IQ", len(name), size) + name)


def _read_split(path: Path) -> Iterator[tuple[str, bytes | str, int]]:
    with gzip.open(path, "rb") as f:
        while kind := f.read(1):
            if kind == b"M":
                (n,) = struct.unpack("<Q", f.read(8))
                yield "M", f.read(n), 0
            else:
                n, size = struct.unpack("<IQ", f.read(12))
                yield "F", f.read(n).decode("utf-8", "surrogateescape"), size


def export_split(split: Path, root: Path) -> Iterator[bytes]:
    """The original tar of a layer, from its tar-split file and its files under ``root``."""
    for kind, value, size in _read_split(split):
        if kind == "M":
            yield value
            continue
        fd = os.open(root / value, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            left = size
            while left > 0:
                chunk = os.read(fd, min(CHUNK, left))
                if not chunk:
                    raise DockyardError(f"layer file {value} changed since it was unpacked")
                left -= len(chunk)
                yield chunk
        finally:
            os.close(fd)


def extract(tar: BinaryIO, dest: Path, strategy: WhiteoutStrategy, *,
            allow_devices: bool = False, chown: bool | None = None,
            split: Path | None = None) -> int:
    """Unpack an uncompressed tar stream into the existing directory ``dest``.

    Returns the bytes of regular-file content written. Raises :class:`InvalidArgument` for
    hostile or corrupt input; ``dest`` is then partially written and the caller removes it.
    ``chown`` defaults to "running as root". With ``split``, also writes there what
    :func:`export_split` needs to give back the identical stream -- unless the tar rewrites
    its own files (duplicate names, whiteouts of its own members), then nothing is written
    and the caller exports by walking the directory instead.
    """
    if chown is None:
        chown = os.geteuid() == 0
    ex = _Extractor(dest, strategy, allow_devices, chown)
    rec = _Recorder(tar) if split is not None else None
    try:
        try:
            with tarfile.open(fileobj=rec or tar, mode="r|", bufsize=READ_SIZE) as tf:
                for m in tf:
                    if (rec is not None and m.isreg() and m.size  # before the data is read
                            and not m.name.rpartition("/")[2].startswith(WHITEOUT_PREFIX)):
                        rec.file(m.offset_data, m.size, "/".join(clean_name(m.name)))
                    ex.member(tf, m)
            if rec is not None:
                rec.finish()
        except (tarfile.TarError, EOFError) as exc:
            raise InvalidArgument(f"invalid layer tar: {exc or 'unexpected end of data'}") from None
        ex.finish()
    finally:
        ex.close()
    if rec is not None and ex.reproducible and _files_intact(dest, rec.records):
        _write_split(split, rec.records)
    return ex.size


def _files_intact(dest: Path, records: list) -> bool:
    for kind, name, size in records:
        if kind == "F":
            try:
                st = os.lstat(dest / name)
            except OSError:
                return False
            if not stat.S_ISREG(st.st_mode) or st.st_size != size:
                return False
    return True


# -- export ----------------------------------------------------------------------------------


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


def overlay_whiteout(path: Path, st: os.stat_result) -> str | None:
    """``"whiteout"`` for a char device 0/0, ``"opaque"`` for an opaque dir, else None."""
    if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
        return "whiteout"
    if stat.S_ISDIR(st.st_mode):
        try:
            if os.getxattr(path, OVERLAY_OPAQUE_XATTR, follow_symlinks=False) == b"y":
                return "opaque"
        except OSError:
            pass
    return None


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


# -- sizes, copies, changes -------------------------------------------------------------------


def dir_size(root: Path) -> int:
    """Bytes of regular files under ``root``, each inode counted once."""
    seen, total = set(), 0
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + dirnames:
            st = os.lstat(os.path.join(dirpath, name))
            if stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


def copy_tree(src: Path, dst: Path) -> None:
    """Copy ``src`` (a directory) to the new path ``dst`` preserving everything (``cp -a``)."""
    proc = subprocess.run(["cp", "-a", "--reflink=auto", "--", str(src), str(dst)],
                          capture_output=True, text=True)
    if proc.returncode:
        raise DockyardError(f"copy {src} -> {dst}: {proc.stderr.strip()}")


def _same(a: os.stat_result, b: os.stat_result) -> bool:
    """Docker's naive diff: mode/owner/rdev always; size and mtime except for directories."""
    if (a.st_mode, a.st_uid, a.st_gid, a.st_rdev) != (b.st_mode, b.st_uid, b.st_gid, b.st_rdev):
        return False
    if stat.S_ISDIR(a.st_mode):
        return True
    return a.st_size == b.st_size and a.st_mtime_ns == b.st_mtime_ns


def _listing(path: Path) -> dict[str, os.stat_result]:
    try:
        with os.scandir(path) as it:
            return {d.name: d.stat(follow_symlinks=False) for d in it}
    except (FileNotFoundError, NotADirectoryError):
        return {}


def tree_changes(old: Path | None, new: Path) -> list[dict]:
    """Docker's ``ChangesDirs(new, old)``: what ``new`` changed compared to ``old``.

    Kind 0 modified, 1 added, 2 deleted. A directory containing changes is reported as
    modified (before its children) unless it is itself added.
    """
    changes: list[dict] = []

    def walk(rel: str, o: Path | None, n: Path) -> None:
        olds = _listing(o) if o is not None else {}
        news = _listing(n)
        for name in sorted(news):
            path, nst = f"{rel}/{name}", news[name]
            ost = olds.pop(name, None)
            start = len(changes)
            if ost is None:
                changes.append({"Path": path, "Kind": 1})
                added = True
            else:
                added = not _same(ost, nst) or (
                    stat.S_ISLNK(nst.st_mode) and os.readlink(o / name) != os.readlink(n / name))
                if added:
                    changes.append({"Path": path, "Kind": 0})
            if stat.S_ISDIR(nst.st_mode):
                both_dirs = ost is not None and stat.S_ISDIR(ost.st_mode)
                walk(path, o / name if both_dirs else None, n / name)
                if len(changes) > start and not added:
                    changes.insert(start, {"Path": path, "Kind": 0})
        for name in sorted(olds):
            changes.append({"Path": f"{rel}/{name}", "Kind": 2})

    walk("", old, new)
    return changes


def changes_size(root: Path, changes: list[dict]) -> int:
    """Bytes of the regular files added or modified (Docker's ``ChangesSize``)."""
    total, seen = 0, set()
    for c in changes:
        if c["Kind"] == 2:
            continue
        try:
            st = os.lstat(root / c["Path"].lstrip("/"))
        except FileNotFoundError:
            continue
        if stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            total += st.st_size
    return total


# -- a driver made of plain directories (vfs, fake) --------------------------------------------

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def check_id(value: str, what: str = "id") -> str:
    """Layer and container ids are single safe path components."""
    if not isinstance(value, str) or not _ID.match(value):
        raise InvalidArgument(f"invalid {what} {value!r}")
    return value


def bool_option(config: dict, key: str, default: bool, driver: str) -> bool:
    value = config.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"storage {driver}: {key} must be true or false, not {value!r}")
    return value


def remove_tree(path: Path) -> None:
    """``rm -rf``; missing is fine."""
    try:
        shutil.rmtree(path)
    except FileNotFoundError:
        pass
    except NotADirectoryError:
        path.unlink()


class CopyStorage:
    """A storage driver of plain directories: no mounts, works without root.

    Layout: ``<root>/layers/<id>/{rootfs,parent,size}`` where ``rootfs`` is a full copy of the
    parent with the layer applied (whiteouts delete), and ``<root>/containers/<cid>/{rootfs,
    parent}`` likewise. ``mount()`` returns ``rootfs``; changes are a tree comparison with the
    parent layer (Docker's naive diff), exports are tars of those changes. A layer's
    ``tar-split`` (when the tar allows one) gives back its original tar byte for byte.
    """

    name = "copy"
    options = ("allow_devices",)

    def __init__(self, config: dict | None = None, root: Path | None = None,
                 state: Path | None = None) -> None:
        config = dict(config or {})
        unknown = set(config) - set(self.options)
        if unknown:
            raise ConfigError(f"storage {self.name}: unknown option(s): {', '.join(sorted(unknown))}")
        if root is None:
            raise ConfigError(f"storage {self.name}: no root directory")
        self.allow_devices = bool_option(config, "allow_devices", False, self.name)
        self.root = Path(root)
        self.state = Path(state) if state else None
        self.mounted: set[str] = set()
        for sub in ("layers", "containers"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
            for junk in (self.root / sub).glob(".tmp-*"):
                remove_tree(junk)

    # paths
    def _layer(self, layer_id: str) -> Path:
        return self.root / "layers" / check_id(layer_id, "layer id")

    def _container(self, cid: str) -> Path:
        return self.root / "containers" / check_id(cid, "container id")

    def _require(self, path: Path, what: str) -> Path:
        if not (path / "rootfs").is_dir():
            raise NotFound(f"{what} {path.name} not found")
        return path

    def _parent_rootfs(self, path: Path) -> Path | None:
        parent = (path / "parent").read_text()
        return self.root / "layers" / parent / "rootfs" if parent else None

    def _build(self, final: Path, parent: str | None, fill: Callable[[Path], int]) -> int:
        """Make ``final`` from a temp dir: rootfs = copy of parent, then ``fill(rootfs)``."""
        if final.exists():
            raise Conflict(f"{final.name} already exists")
        if parent is not None:
            self._require(self._layer(parent), "parent layer")
        tmp = final.parent / f".tmp-{final.name}-{secrets.token_hex(4)}"
        try:
            tmp.mkdir()
            if parent is None:
                (tmp / "rootfs").mkdir(0o755)
            else:
                copy_tree(self._layer(parent) / "rootfs", tmp / "rootfs")
            size = fill(tmp / "rootfs")
            (tmp / "parent").write_text(parent or "")
            (tmp / "size").write_text(str(size))
            try:
                tmp.rename(final)
            except OSError as exc:
                raise Conflict(f"{final.name} already exists") from exc
        except BaseException as exc:
            remove_tree(tmp)
            if isinstance(exc, OSError):
                raise DockyardError(f"create {final.name}: {exc}") from exc
            raise
        return size

    def status(self) -> list[list[str]]:
        return []

    # layers
    def create_layer(self, layer_id: str, parent: str | None, tar: BinaryIO) -> int:
        return self._build(self._layer(layer_id), parent, lambda rootfs: extract(
            tar, rootfs, DeleteWhiteouts(), allow_devices=self.allow_devices,
            split=rootfs.parent / "tar-split"))

    def has_layer(self, layer_id: str) -> bool:
        return (self._layer(layer_id) / "rootfs").is_dir()

    def remove_layer(self, layer_id: str) -> None:
        remove_tree(self._layer(layer_id))

    def export_layer(self, layer_id: str) -> Iterator[bytes]:
        path = self._require(self._layer(layer_id), "layer")
        if (path / "tar-split").exists():
            return export_split(path / "tar-split", path / "rootfs")
        return export_changes(path / "rootfs", tree_changes(self._parent_rootfs(path), path / "rootfs"))

    def layer_size(self, layer_id: str) -> int:
        return int((self._require(self._layer(layer_id), "layer") / "size").read_text())

    def layers(self) -> list[str]:
        return sorted(p.name for p in (self.root / "layers").iterdir()
                      if not p.name.startswith(".") and (p / "rootfs").is_dir())

    # containers
    def create_rw(self, cid: str, parent: str | None) -> None:
        self._build(self._container(cid), parent, lambda rootfs: 0)

    def mount(self, cid: str) -> str:
        path = self._require(self._container(cid), "container")
        self.mounted.add(cid)
        return str(path / "rootfs")

    def unmount(self, cid: str) -> None:
        self.mounted.discard(cid)

    def is_mounted(self, cid: str) -> bool:
        return cid in self.mounted

    def remove_rw(self, cid: str) -> None:
        self.unmount(cid)
        remove_tree(self._container(cid))

    def changes(self, cid: str) -> list[dict]:
        path = self._require(self._container(cid), "container")
        return tree_changes(self._parent_rootfs(path), path / "rootfs")

    def export_changes(self, cid: str) -> Iterator[bytes]:
        path = self._require(self._container(cid), "container")
        return export_changes(path / "rootfs", self.changes(cid))

    def rw_size(self, cid: str) -> int:
        path = self._require(self._container(cid), "container")
        return changes_size(path / "rootfs", self.changes(cid))

    def containers(self) -> list[str]:
        return sorted(p.name for p in (self.root / "containers").iterdir()
                      if not p.name.startswith(".") and (p / "rootfs").is_dir())

    def close(self) -> None:
        pass
