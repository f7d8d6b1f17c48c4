"""A layer's small new files created in batches, off the GIL (issue 18, ``docker load``).

Unpacking a 20k-small-file layer is per-file kernel work (create, write, set times: about
two thirds) and per-member Python (parse, checks: a third), one after the other on one
thread. :class:`FileBatch` takes runs of plain regular files of one directory from the
unpacker (which has parsed and checked them as before) and has ``newfiles.c``'s workers
create them, each on its own thread, which never needs the GIL: the kernel work of two batches
runs on both cores while the next is parsed. A Python thread calling ``os.open`` per file would not overlap: each
return from a syscall waits for the GIL the parser holds.

Ordering: files of a batch are created after the members parsed before them and before any
member whose path could touch them (at, under or above their directory), a hard link, a
whiteout, a device or FIFO (:meth:`FileBatch.related`, the unpacker calls :meth:`sync`). Members
elsewhere may be created meanwhile: they cannot meet. A name that already exists (a duplicate
member, a directory of the same name) fails ``O_EXCL`` in the batch and is then replaced by the
unpacker's own code, in order.

The library is compiled from ``newfiles.c`` once into the shim cache directory (root-owned,
as the runtime's shim) and loaded with ctypes; without a C compiler the unpacker stays on
its Python path.
"""

from __future__ import annotations

import collections
import errno
import hashlib
import logging
import os
import struct
import subprocess
import threading
from pathlib import Path
from typing import Any, Callable

log = logging.getLogger("dockyard.layers")

SOURCE = Path(__file__).with_name("newfiles.c")
_REC = struct.Struct("<IIQq")  # struct dy_rec: name length, mode, size, mtime (ns)
_JOB = struct.Struct("<iiQQ")  # struct dy_job: dir fd, pad, buffer address, length
_RES = struct.Struct("<qii")  # struct dy_res: files created (or -(n + 1)), errno, pad

MAX_FILES = 256  # files per batch
# batches running at a time: their kernel work in parallel, a core each (one on a single core)
WORKERS = 2 if len(os.sched_getaffinity(0)) > 1 else 1
MAX_BYTES = 4 << 20  # data per batch

_lock = threading.Lock()
_loaded: list[Any] = []  # [library or None] once tried


def library() -> Any:
    """The loaded library, or None (no compiler, not loadable: the Python path is used)."""
    if _loaded:
        return _loaded[0]
    with _lock:
        if not _loaded:
            try:
                lib = _load()
            except Exception as exc:  # noqa: BLE001 - any failure: the Python path
                log.info("layer unpack without the native file batches: %s", exc)
                lib = None
            _loaded.append(lib)
    return _loaded[0]


def _trusted(path: Path) -> bool:
    """Ours to load into the daemon: a regular file owned by us (or root), writable by no
    one else, in a directory the same holds for."""
    me = os.geteuid()
    for p in (path, path.parent):
        st = os.lstat(p)
        if st.st_uid not in (0, me) or st.st_mode & 0o022:
            return False
    return os.path.isfile(path) and not path.is_symlink()


def _load() -> Any:
    import ctypes

    from ..runtime.native import find_cc, shim_cache_dir

    src = SOURCE.read_bytes()
    target = shim_cache_dir() / f"libdockyard-newfiles-{hashlib.sha256(src).hexdigest()[:12]}.so"
    if not target.exists():
        cc = find_cc()
        if cc is None:
            raise OSError("no C compiler (cc)")
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        tmp = target.with_name(f"{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            r = subprocess.run([cc, "-O2", "-shared", "-fPIC", "-o", str(tmp), str(SOURCE)],
                               capture_output=True, text=True)
            if r.returncode != 0:
                raise OSError(f"cannot compile {SOURCE.name}: {r.stderr.strip()[:500]}")
            os.chmod(tmp, 0o555)
            os.rename(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
    if not _trusted(target):
        raise OSError(f"{target} is not owned by root or is writable by others: not loaded")
    lib = ctypes.CDLL(str(target))
    lib.dy_create_files.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_int)]
    lib.dy_create_files.restype = ctypes.c_long
    lib.dy_files_worker.argtypes = [ctypes.c_int, ctypes.c_int]
    lib.dy_files_worker.restype = ctypes.c_int
    return lib


class _Run:
    """A batch a worker has: its buffer must stay alive (the worker reads it by address)
    until its result is read."""

    __slots__ = ("dir_fd", "dirparts", "items", "buf", "names", "worker")

    def __init__(self, dir_fd: int, dirparts: tuple[str, ...] | None, items: list[tuple[bytes, Any, str, bytes]],
                 buf: bytes, names: set[str], worker: int) -> None:
        self.dir_fd, self.dirparts, self.items, self.buf = dir_fd, dirparts, items, buf
        self.names, self.worker = names, worker


class FileBatch:
    """Small new files of one layer, created by the library's worker threads in batches of
    up to ``MAX_FILES`` (up to ``WORKERS`` batches at a time, while the next is filled).
    Batches that run at the same time never share a name of the same directory (the later
    waits), so which one the kernel serves first cannot matter; results are taken in order.

    ``exists(dir_fd, base, data, member)`` creates a file whose name already existed (the
    unpacker's replace path), ``fail(member, errno)`` makes the error to raise for a file the
    batch could not create. Errors surface from :meth:`add`, :meth:`switch` or :meth:`sync`
    (a later member's), as the unpacker's own would: the layer is refused either way."""

    def __init__(self, lib: Any, exists: Callable[[int, str, bytes, Any], None],
                 fail: Callable[[Any, int], BaseException]) -> None:
        self.lib, self.exists, self.fail = lib, exists, fail
        self.dir_fd = -1  # a dup of the directory of the queued files
        self.dirparts: tuple[str, ...] | None = None
        self.items: list[tuple[bytes, Any, str, bytes]] = []  # record, member, name, data
        self.names: set[str] = set()
        self.nbytes = 0
        self.runs: collections.deque[_Run] = collections.deque()  # oldest first
        self.workers: list[tuple[threading.Thread, tuple[int, int, int, int]]] = []  # job r/w, result r/w

    def related(self, parts: tuple[str, ...]) -> bool:
        """Whether a member at ``parts`` could touch the queued or running files: it is at or
        under their directory, or their directory is under it."""
        d = self.dirparts
        if d is not None and (parts[:len(d)] == d or d[:len(parts)] == parts):
            return True
        return any(self._related(run, parts) for run in self.runs)

    @staticmethod
    def _related(run: _Run, parts: tuple[str, ...]) -> bool:
        d = run.dirparts
        return d is not None and (parts[:len(d)] == d or d[:len(parts)] == parts)

    def switch(self, dirparts: tuple[str, ...]) -> None:
        """The next files go to ``dirparts``: the queued ones are handed on; running batches
        whose directory is related to the new one (under it, above it) are waited for, before
        the unpacker opens or makes any of its components."""
        if dirparts == self.dirparts:
            return
        self._submit()
        self._release()
        while any(self._related(run, dirparts) for run in self.runs):
            self._wait()
        self.dirparts = dirparts

    def add(self, dir_fd: int, base: str, data: bytes, mode: int, mtime_ns: int, member: Any) -> None:
        """Queue a new file ``base`` of ``data`` in ``dir_fd`` (the directory of the last
        :meth:`switch`; opened by the unpacker, no symlink followed)."""
        if self.dir_fd < 0:
            self.dir_fd = os.dup(dir_fd)
        for run in self.runs:
            if base in run.names and run.dirparts == self.dirparts:  # the same name running: after it
                while run in self.runs:
                    self._wait()
                break
        name = base.encode("utf-8", "surrogateescape")
        rec = _REC.pack(len(name), mode, len(data), mtime_ns) + name + b"\0" + data
        self.items.append((rec, member, base, data))
        self.names.add(base)
        self.nbytes += len(rec)
        if len(self.items) >= MAX_FILES or self.nbytes >= MAX_BYTES:
            self._submit()

    def sync(self) -> None:
        """Every queued file created (errors raised); the next files start a new batch."""
        self._submit()
        while self.runs:
            self._wait()
        self._release()

    def close(self) -> None:
        """Stop the workers (after their batches: they read the buffers); errors are not
        raised (the unpacker is done, or failing already)."""
        try:
            while self.runs:
                run = self.runs[0]
                try:
                    _read_result(self.workers[run.worker][1][2])
                finally:
                    self.runs.popleft()
                    self._close_fd(run.dir_fd)
        finally:
            for thread, (jr, jw, rr, rw) in self.workers:
                os.close(jw)  # the worker returns at the end of its job pipe
                thread.join()
                for fd in (jr, rr, rw):
                    os.close(fd)
            self.workers = []
            self.items, self.names = [], set()
            self._release()

    def _close_fd(self, fd: int) -> None:
        """Close a batch's directory fd once neither the queue nor a running batch has it."""
        if fd >= 0 and fd != self.dir_fd and all(run.dir_fd != fd for run in self.runs):
            os.close(fd)

    def _release(self) -> None:
        fd, self.dir_fd, self.dirparts = self.dir_fd, -1, None
        self._close_fd(fd)

    def _submit(self) -> None:
        if not self.items:
            return
        if len(self.runs) >= WORKERS:
            self._wait()
        busy = {run.worker for run in self.runs}
        worker = next((i for i in range(len(self.workers)) if i not in busy), len(self.workers))
        if worker == len(self.workers):
            jr, jw = os.pipe2(os.O_CLOEXEC)
            rr, rw = os.pipe2(os.O_CLOEXEC)
            thread = threading.Thread(target=self.lib.dy_files_worker, args=(jr, rw),
                                      name="layer-files", daemon=True)
            thread.start()
            self.workers.append((thread, (jr, jw, rr, rw)))
        import ctypes

        buf = b"".join([item[0] for item in self.items])
        addr = ctypes.cast(ctypes.c_char_p(buf), ctypes.c_void_p).value or 0
        self.runs.append(_Run(self.dir_fd, self.dirparts, self.items, buf, self.names, worker))
        self.items, self.names, self.nbytes = [], set(), 0
        os.write(self.workers[worker][1][1], _JOB.pack(self.dir_fd, 0, addr, len(buf)))

    def _wait(self) -> None:
        """Take the oldest running batch's result."""
        if not self.runs:
            return
        run = self.runs[0]
        n, err, _ = _read_result(self.workers[run.worker][1][2])
        self.runs.popleft()
        try:
            self._finish(run.dir_fd, run.items, n, err)
        finally:
            self._close_fd(run.dir_fd)

    def _finish(self, dir_fd: int, items: list[tuple[bytes, Any, str, bytes]], n: int, err: int) -> None:
        """A batch's result: an existing name is replaced by the unpacker, the rest of the
        batch created after it, in order; any other error is raised."""
        import ctypes

        while err:
            if n < 0 or err != errno.EEXIST:
                raise self.fail(items[-n - 1 if n < 0 else n][1], err)
            _, member, base, data = items[n]
            self.exists(dir_fd, base, data, member)
            items = items[n + 1:]
            if not items:
                return
            buf = b"".join([item[0] for item in items])
            e = ctypes.c_int(0)
            n = self.lib.dy_create_files(dir_fd, buf, len(buf), ctypes.byref(e))
            err = e.value


def _read_result(fd: int) -> tuple[int, int, int]:
    res = b""
    while len(res) < _RES.size:
        chunk = os.read(fd, _RES.size - len(res))
        if not chunk:
            raise OSError(errno.EPIPE, "the layer file writer stopped")
        res += chunk
    return _RES.unpack(res)
