"""The layer tar cache: ``docker save`` keeps the layer tars it exported, to send them again
with ``sendfile(2)`` instead of replaying the tar-split over every file of the layer and
hashing the result.

Only for storage drivers with ``reproducible-export`` (they keep no layer blobs: a save
re-creates each layer tar from the unpacked files, checked against its diff id). A layer
tar is content-addressed by its diff id, so an entry is valid for every layer with that
diff id, as long as one exists.

* Written while a save streams the export (a copy of the bytes going to the client), and
  put in place only once the export matched its diff id: temp file, fsync, rename. A crash
  leaves a temp file (swept at start) or a complete entry; an entry is used only if its
  size is the layer tar's.
* Bounded: ``layer-tar-cache`` bytes in all (daemon config, default 1 GiB; 0 turns it off),
  least recently used entries dropped first; a layer tar is not cached when writing it
  would leave the file system with less than 10 % free.
* An entry goes with the last layer of its diff id; ``docker image prune`` and
  ``docker system prune`` empty the cache (its bytes count as reclaimed).
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path
from typing import BinaryIO, Callable

from .store import split_digest

DEFAULT_LIMIT = 1 << 30
MIN_FREE = 0.10  # of the file system: never fill the disk with a cache


class LayerTarCache:
    def __init__(self, root: Path, limit: int = DEFAULT_LIMIT,
                 wanted: Callable[[str], bool] = lambda diff_id: True) -> None:
        self.root = Path(root)
        self.limit = limit
        self.wanted = wanted  # whether a layer of that diff id still exists
        self.lock = threading.Lock()
        self.root.mkdir(parents=True, exist_ok=True)
        for p in self.root.iterdir():  # what a crash left mid-write
            if p.name.startswith(".tmp-"):
                p.unlink(missing_ok=True)

    def _path(self, diff_id: str) -> Path:
        return self.root / split_digest(diff_id)

    def open(self, diff_id: str, size: int) -> BinaryIO | None:
        """The cached tar of ``diff_id`` if there is one of ``size`` bytes (else None)."""
        if self.limit <= 0:
            return None
        try:
            fd = os.open(self._path(diff_id), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return None
        f = os.fdopen(fd, "rb")
        st = os.fstat(fd)
        if st.st_size != size or not (st.st_mode & 0o170000 == 0o100000):
            f.close()
            return None
        with contextlib.suppress(OSError):
            os.utime(fd)  # recently used: evicted last
        return f

    def writer(self, diff_id: str, size: int) -> "CacheWriter | None":
        """A temp file to copy the export of ``diff_id`` into, or None (off, too large, disk
        nearly full)."""
        if self.limit <= 0 or size > self.limit:
            return None
        try:
            vfs = os.statvfs(self.root)
        except OSError:
            return None
        if (vfs.f_bavail * vfs.f_frsize) - size < MIN_FREE * vfs.f_blocks * vfs.f_frsize:
            return None
        tmp = self.root / f".tmp-{os.urandom(8).hex()}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except OSError:
            return None
        return CacheWriter(self, diff_id, tmp, fd)

    def remove(self, diff_id: str) -> None:
        self._path(diff_id).unlink(missing_ok=True)

    def entries(self) -> list[tuple[float, int, Path]]:
        out = []
        for p in self.root.iterdir():
            if p.name.startswith("."):
                continue
            try:
                st = p.lstat()
            except OSError:
                continue
            out.append((st.st_mtime, st.st_size, p))
        return out

    def keep_only(self, diff_ids: set[str]) -> None:
        """Drop the entries of diff ids no layer has (a layer removed while the daemon was down)."""
        keep = {split_digest(d) for d in diff_ids}
        for _, _, p in self.entries():
            if p.name not in keep:
                p.unlink(missing_ok=True)

    def clear(self) -> int:
        """Empty the cache; the bytes freed."""
        freed = 0
        with self.lock:
            for _, size, p in self.entries():
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
                    freed += size
        return freed

    def evict(self) -> None:
        with self.lock:
            entries = sorted(self.entries())
            total = sum(size for _, size, _ in entries)
            for _, size, p in entries:
                if total <= self.limit:
                    break
                p.unlink(missing_ok=True)
                total -= size


class CacheWriter:
    def __init__(self, cache: LayerTarCache, diff_id: str, tmp: Path, fd: int) -> None:
        self.cache, self.diff_id, self.tmp, self.fd = cache, diff_id, tmp, fd
        self.failed = False

    def write(self, data: bytes) -> None:
        if self.failed:
            return
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self.fd, view):]
        except OSError:  # a cache must never fail the save (ENOSPC, ...)
            self.failed = True

    def commit(self) -> None:
        """Put the entry in place (the caller checked the content against the diff id)."""
        try:
            if self.failed:
                return
            try:
                os.fsync(self.fd)
                os.close(self.fd)
                self.fd = -1
                os.rename(self.tmp, self.cache._path(self.diff_id))
            except OSError:
                return
            if not self.cache.wanted(self.diff_id):  # its last layer went while it was written
                self.cache.remove(self.diff_id)
            self.cache.evict()
        finally:
            self.abort()

    def abort(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        self.tmp.unlink(missing_ok=True)
