"""Safe extraction of layer tars (hostile input) into a directory.

:func:`extract` streams a tar (``mode="r|"``) into a directory and refuses the whole stream
with :class:`InvalidArgument` (naming the member) on:

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
"""

from __future__ import annotations

import errno
import os
import stat
import tarfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from ..errors import InvalidArgument
from .tarfmt import CHUNK, READ_SIZE, XATTR_PAX_PREFIX, TarInfo, fast_stream
from .tarsplit import Recorder, files_intact, write_split
from .trees import lstat_at, remove_at
from .whiteouts import OPAQUE, WHITEOUT_META_PREFIX, WHITEOUT_PREFIX, WhiteoutStrategy

if TYPE_CHECKING:
    from .newfiles import FileBatch

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
MAX_BATCHED = 256 << 10  # regular files up to this size may go to a FileBatch (newfiles)
_PLAIN = (tarfile.REGTYPE, tarfile.AREGTYPE)
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
# errnos meaning "a parent component is not a real directory": refuse, do not follow
_NOT_A_DIR = {errno.ELOOP, errno.ENOTDIR, errno.EMLINK}
# errnos a tar's content can cause (names, types, links): reported as a bad tar
_CONTENT_ERRNOS = {errno.ENOENT, errno.EEXIST, errno.EPERM, errno.ENOTDIR, errno.EISDIR,
                   errno.ELOOP, errno.EINVAL, errno.ENAMETOOLONG, errno.ENOTEMPTY, errno.EMLINK}


def clean_name(name: str, what: str = "member") -> tuple[str, ...]:
    """Split a tar name into components; refuse absolute names and ``..``."""
    if name.startswith("/"):
        raise InvalidArgument(f"invalid layer tar: {what} {name!r} is an absolute path")
    split = name.split("/")
    if "" in split or "." in split:
        split = [p for p in split if p not in ("", ".")]
    if ".." in split:
        raise InvalidArgument(f"invalid layer tar: {what} {name!r} contains '..'")
    if "\0" in name:  # the same as in a component: "/" and the dropped "" / "." hold none
        raise InvalidArgument(f"invalid layer tar: {what} {name!r} contains a NUL byte")
    return tuple(split)


class _Extractor:
    def __init__(self, dest: Path, strategy: WhiteoutStrategy, allow_devices: bool, chown: bool,
                 idmap: Any = None):
        self.idmap = idmap  # a dockyard.userns.IdMapping: owners shifted into its host range
        self.root_fd = os.open(dest, _DIR_FLAGS)
        self.strategy, self.allow_devices, self.chown = strategy, allow_devices, chown
        self.extracted: set[tuple[str, ...]] = set()   # every path created from this stream
        self.children: dict[tuple[str, ...], set[str]] = {}
        self.dirs: list[tuple[tuple[str, ...], tarfile.TarInfo]] = []  # mode/mtime set last
        self.cached: tuple[tuple[str, ...], int] | None = None
        self.size = 0
        self.members: set[tuple[str, ...]] = set()
        self.reproducible = True  # False once the stream rewrites or deletes its own members
        # True once anything under dest was removed (a replaced name, a whiteout, an opaque
        # directory): only that can take away or change a file this stream created (O_EXCL)
        self.removed = False
        self.umask = _umask()
        self.mode_fixups = 0o7000 | self.umask  # mode bits open() cannot give a new file (_open_mode)
        self.uid, self.gid = os.geteuid(), os.getegid()
        # An empty, non-setgid ``dest``: every directory below is made here (mode 0o755/0o700
        # until finish()), so a new file is owned by our euid/egid and needs no fchown to them.
        st = os.fstat(self.root_fd)
        self.fresh = not st.st_mode & stat.S_ISGID and not os.listdir(self.root_fd)
        # a fresh dest: runs of small plain files are created in batches off the GIL
        self.batch: FileBatch | None = None
        if self.fresh:
            from . import newfiles

            lib = newfiles.library()
            if lib is not None:
                self.batch = newfiles.FileBatch(lib, self._replace_batched, self._batch_error)

    def close(self) -> None:
        if self.batch is not None:
            batch, self.batch = self.batch, None
            batch.close()
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
                    if self.idmap is not None:  # a parent the tar did not list: owned by remapped root
                        os.chown(comp, self.idmap.root_uid, self.idmap.root_gid, dir_fd=fd, follow_symlinks=False)
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

    def member(self, tf: tarfile.TarFile, m: tarfile.TarInfo, parts: tuple[str, ...]) -> None:
        """Extract one member (``parts``: :func:`clean_name` of its name); OS errors caused
        by the tar's content become InvalidArgument."""
        try:
            self._member(tf, m, parts)
        except OSError as exc:
            if exc.errno in _CONTENT_ERRNOS:
                raise InvalidArgument(f"invalid layer tar: member {m.name!r}: {exc.strerror}") from None
            raise

    def _member(self, tf: tarfile.TarFile, m: tarfile.TarInfo, parts: tuple[str, ...]) -> None:
        if not parts:  # "." or "./": the layer root itself
            return
        dirparts, base = parts[:-1], parts[-1]
        if parts in self.members and not m.isdir():
            self.reproducible = False
        self.members.add(parts)
        if self.batch is not None:
            # a plain file (not sparse, no xattrs) whose mode open() gives exactly (no set-id
            # bits, nothing the umask takes) and whose owner is ours: no fchmod/fchown/setxattr
            if (m.type in _PLAIN and m.size <= MAX_BATCHED and not m.mode & self.mode_fixups
                    and m.sparse is None and not base.startswith(WHITEOUT_PREFIX)
                    and (not self.chown or (m.uid == self.uid and m.gid == self.gid if self.idmap is None
                                            else self._owner(m) == (self.uid, self.gid)))
                    and (not m.pax_headers or not _xattrs(m))):
                self.batched(tf, m, parts)
                return
            # hard links, devices, FIFOs, whiteouts and anything at, under or above the queued
            # files' directory: after them (elsewhere, a member cannot meet them)
            if (not (m.isreg() or m.isdir() or m.issym()) or base.startswith(WHITEOUT_PREFIX)
                    or self.batch.related(parts)):
                self.batch.sync()
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
        existing = lstat_at(pfd, base)
        keep_dir = m.isdir() and existing is not None and stat.S_ISDIR(existing.st_mode)
        if existing is not None and not keep_dir:
            if stat.S_ISDIR(existing.st_mode):
                self._invalidate(parts)
                pfd = self.parent_fd(parts[:-1], m.name)
            self.removed = True
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
            self.removed = True
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
        self.removed = True
        self.strategy.whiteout(pfd, name)

    def _open_mode(self, m: tarfile.TarInfo) -> int:
        """The mode to create a file with: its final mode when ``open`` can give it exactly
        (no set-id/sticky bits, nothing masked by the umask), else 0o600 and a fchmod later."""
        mode = m.mode & 0o7777
        return mode if not mode & (0o7000 | self.umask) else 0o600

    def batched(self, tf: tarfile.TarFile, m: tarfile.TarInfo, parts: tuple[str, ...]) -> None:
        """A small plain file of a fresh layer: read, and queued to the batch of its
        directory (created with the mode and times the Python path gives it)."""
        batch = self.batch
        assert batch is not None
        dirparts = parts[:-1]
        if dirparts != batch.dirparts:
            batch.switch(dirparts)  # before parent_fd makes or opens a component
        pfd = self.parent_fd(dirparts, m.name)
        data = tf.fileobj.read(m.size) if m.size else b""
        if len(data) != m.size:
            raise InvalidArgument(f"invalid layer tar: member {m.name!r} is truncated")
        batch.add(pfd, parts[-1], data, m.mode & 0o7777, _ns(m.mtime), m)
        self.size += m.size
        self._record(parts)

    def _replace_batched(self, pfd: int, base: str, data: bytes, m: tarfile.TarInfo) -> None:
        """A batched file whose name existed (``O_EXCL``): replaced, as :meth:`_create` does."""
        try:
            self._invalidate(clean_name(m.name))
            self.removed = True
            remove_at(pfd, base)
            fd = os.open(base, _FILE_FLAGS, self._open_mode(m), dir_fd=pfd)
            try:
                _write_all(fd, data)
                os.utime(fd, ns=(_ns(m.mtime), _ns(m.mtime)))
            finally:
                os.close(fd)
        except OSError as exc:
            raise self._batch_error(m, exc.errno) from None

    @staticmethod
    def _batch_error(m: tarfile.TarInfo, err: int) -> BaseException:
        if err in _CONTENT_ERRNOS:
            return InvalidArgument(f"invalid layer tar: member {m.name!r}: {os.strerror(err)}")
        return OSError(err, os.strerror(err), m.name)

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
            uid, gid = self._owner(m)
            if self.chown and not (self.fresh and uid == self.uid and gid == self.gid):
                os.fchown(fd, uid, gid)  # clears set-id bits: the fchmod comes after
            if self._open_mode(m) != mode:
                os.fchmod(fd, mode)
            if m.pax_headers:
                _set_xattrs(fd, m)
            os.utime(fd, ns=(_ns(m.mtime), _ns(m.mtime)))
        finally:
            os.close(fd)

    def _own(self, m: tarfile.TarInfo, pfd: int, base: str) -> None:
        if self.chown:
            os.chown(base, *self._owner(m), dir_fd=pfd, follow_symlinks=False)
        if not m.issym() and _xattrs(m):
            # O_PATH: the name may be a FIFO or a device (of the tar, or swapped in by a running
            # container during docker cp): opening it for real could block or act on the device
            fd = os.open(base, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
            try:
                if not stat.S_ISLNK(os.fstat(fd).st_mode):
                    _set_xattrs(f"/proc/self/fd/{fd}", m)
            finally:
                os.close(fd)

    def _owner(self, m: tarfile.TarInfo) -> tuple[int, int]:
        """The host owner of a member: its own, or shifted by the id mapping (userns-remap;
        an id outside the mapping refuses the tar, as dockerd does)."""
        if self.idmap is None:
            return m.uid, m.gid
        return self.idmap.uid_to_host(m.uid), self.idmap.gid_to_host(m.gid)

    def _times(self, m: tarfile.TarInfo, pfd: int, base: str) -> None:
        os.utime(base, ns=(_ns(m.mtime), _ns(m.mtime)), dir_fd=pfd, follow_symlinks=False)

    def finish(self) -> None:
        """Directories' modes and mtimes last (writing children changes them), deepest first."""
        if self.batch is not None:
            self.batch.sync()
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


def _xattrs(m: tarfile.TarInfo) -> dict[str, bytes]:
    out = {}
    for key, value in m.pax_headers.items():
        if key.startswith(XATTR_PAX_PREFIX):
            name = key[len(XATTR_PAX_PREFIX):]
            if name.startswith("trusted."):
                continue  # trusted.overlay.* would steer overlayfs: never from a tar
            out[name] = value.encode("utf-8", "surrogateescape")
    return out


def _set_xattrs(fd: int | str, m: tarfile.TarInfo) -> None:
    for name, value in _xattrs(m).items():
        try:
            os.setxattr(fd, name, value)
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EPERM, errno.EACCES, errno.EINVAL):
                raise


def extract(tar: BinaryIO, dest: Path, strategy: WhiteoutStrategy, *,
            allow_devices: bool = False, chown: bool | None = None, idmap: Any = None,
            split: Path | None = None) -> int:
    """Unpack an uncompressed tar stream into the existing directory ``dest``.

    Returns the bytes of regular-file content written. Raises :class:`InvalidArgument` for
    hostile or corrupt input; ``dest`` is then partially written and the caller removes it.
    ``chown`` defaults to "running as root"; ``idmap`` (a :class:`dockyard.userns.IdMapping`)
    shifts every owner into the host range of a user namespace, as dockerd's userns-remap
    (default: the daemon's mapping, :func:`dockyard.userns.activate`). With ``split``, also writes there what
    :func:`export_split` needs to give back the identical stream -- unless the tar rewrites
    its own files (duplicate names, whiteouts of its own members), then nothing is written
    and the caller exports by walking the directory instead.
    """
    if chown is None:
        chown = os.geteuid() == 0
    if idmap is None:
        from ..userns import active

        idmap = active()  # the daemon's --userns-remap mapping: its storage is all shifted
    ex = _Extractor(dest, strategy, allow_devices, chown or idmap is not None, idmap)
    rec = Recorder(tar) if split is not None else None
    try:
        try:
            with fast_stream(tarfile.open(fileobj=rec or tar, mode="r|", bufsize=READ_SIZE,
                                          tarinfo=TarInfo)) as tf:
                for m in tf:
                    parts = clean_name(m.name)
                    if (rec is not None and m.isreg() and m.size  # before the data is read
                            and not m.name.rpartition("/")[2].startswith(WHITEOUT_PREFIX)):
                        rec.file(m.offset_data, m.size, "/".join(parts))
                    ex.member(tf, m, parts)
            if rec is not None:
                rec.finish()
        except (tarfile.TarError, EOFError) as exc:
            raise InvalidArgument(f"invalid layer tar: {exc or 'unexpected end of data'}") from None
        ex.finish()
    finally:
        ex.close()
    # files_intact (an lstat per file) only when something was removed or dest was not empty
    if rec is not None and ex.reproducible and (
            (ex.fresh and not ex.removed) or files_intact(dest, rec.records)):
        write_split(split, rec.records)
    return ex.size

