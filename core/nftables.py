"""nftables from Python: libnftables through ctypes (0.2 ms a batch), ``nft -f -`` otherwise.

A batch is one transaction: it applies whole or not at all. A context talks netlink in the
network namespace of the thread that made it (the embedded DNS makes one inside a container's).
A context is made at the first batch, in the calling thread, and :func:`release_idle` frees
every context and unloads the library when the daemon is quiet (the API's memory janitor,
issue 18): a context keeps libnftables' copy of the ruleset it listed (3.4 MB of heap at an
idle daemon here, after the default bridge's start-up batches), and the library with its
dependencies (libnftnl, libxtables, libgmp, ...) is ~1 MB of mapped pages; loading it again
and a new context cost ~0.1 ms at the next batch. That is sound because the daemon
never runs a batch of a long-lived :class:`Nft` from a thread in a container's namespace
(:func:`dockyard.networks.netns.run_in` uses a thread of its own, which makes its own context).
"""

from __future__ import annotations

import _ctypes
import ctypes
import ctypes.util
import shutil
import subprocess
import threading
import weakref
from typing import Any

from .errors import DockyardError


class NftError(DockyardError):
    """nftables refused a batch."""


_lib_lock = threading.Lock()  # guards everything below
_lib: Any = None  # the loaded library, or None (not loaded now, or not installed)
_available: bool | None = None  # None: not looked for yet
_name = ""  # what to dlopen (find_library runs ldconfig: once)
_users = 0  # batches (and frees) using _lib right now: it is not unloaded under them
_instances: "weakref.WeakSet[Nft]" = weakref.WeakSet()


def _load() -> Any:
    """dlopen libnftables (under ``_lib_lock``); None when it is not installed."""
    global _lib, _available, _name
    if _lib is None and _available is not False:
        _name = _name or ctypes.util.find_library("nftables") or "libnftables.so.1"
        try:
            lib = ctypes.CDLL(_name)
        except OSError:
            _available = False
            return None
        lib.nft_ctx_new.restype = ctypes.c_void_p
        lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
        lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
        lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        lib.nft_ctx_get_output_buffer.restype = ctypes.c_char_p
        lib.nft_ctx_get_output_buffer.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
        lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
        _lib, _available = lib, True
    return _lib


def _acquire(load: bool = True) -> Any:
    """The library, held for one use (:func:`_done`), loaded again if it was unloaded (or not,
    with ``load`` false: None then)."""
    global _users
    with _lib_lock:
        lib = _load() if load else _lib
        if lib is not None:
            _users += 1
        return lib


def _done() -> None:
    global _users
    with _lib_lock:
        _users -= 1


def loaded() -> bool:
    """Whether libnftables is mapped in this process now."""
    return _lib is not None


def release_idle() -> int:
    """Free the context of every :class:`Nft` and unload libnftables (the next batch loads it
    and makes a context again), unless a batch is running; how many contexts were freed."""
    global _lib
    with _lib_lock:
        if _lib is None or _users:
            return 0
        freed = 0
        for nft in list(_instances):
            if nft._ctx is not None:  # no batch runs (_users == 0) and none can start (_lib_lock)
                _lib.nft_ctx_free(nft._ctx)
                nft._ctx = None
                freed += 1
        handle, _lib = _lib._handle, None
        _ctypes.dlclose(handle)  # with its dependencies (libnftnl, libmnl, libxtables, libjansson, libgmp)
        return freed


class Nft:
    def __init__(self) -> None:
        self._lock = threading.Lock()  # a libnftables context is not thread-safe
        self._ctx: Any = None  # made by the library loaded now (release_idle frees it before unloading)
        with _lib_lock:
            if _available is None:
                _load()  # is it installed? (unloaded again at idle)
            installed = bool(_available)
            if installed:
                _instances.add(self)
        self.backend = "libnftables" if installed else "nft"
        if not installed and shutil.which("nft") is None:
            raise NftError("neither libnftables nor the nft command is installed")

    def run(self, text: str) -> str:
        """Run an nft script; return its output. A refused script raises :class:`NftError`."""
        lib = _acquire() if self.backend == "libnftables" else None
        if lib is not None:
            try:
                with self._lock:
                    if self._ctx is None:
                        ctx = lib.nft_ctx_new(0)
                        if ctx:
                            lib.nft_ctx_buffer_output(ctx)
                            lib.nft_ctx_buffer_error(ctx)
                        self._ctx = ctx or None
                    if self._ctx is not None:
                        rc = lib.nft_run_cmd_from_buffer(self._ctx, text.encode())
                        out = (lib.nft_ctx_get_output_buffer(self._ctx) or b"").decode()
                        err = (lib.nft_ctx_get_error_buffer(self._ctx) or b"").decode()
                        if rc != 0:
                            raise NftError(f"nftables: {err.strip() or 'failed'}")
                        return out
            finally:
                _done()
        proc = subprocess.run(["nft", "-f", "-"], input=text.encode(), capture_output=True)
        rc, out, err = proc.returncode, proc.stdout.decode(), proc.stderr.decode()
        if rc != 0:
            raise NftError(f"nftables: {err.strip() or 'failed'}")
        return out

    def try_run(self, text: str) -> str | None:
        """Like :meth:`run` but None when nftables refuses (e.g. listing a missing table)."""
        try:
            return self.run(text)
        except NftError:
            return None

    def release(self) -> bool:
        """Free the context now (it keeps a copy of the ruleset); the next batch makes a new one."""
        lib = _acquire(load=False)  # no context exists while the library is unloaded
        if lib is None:
            return False
        try:
            with self._lock:
                if self._ctx is None:
                    return False
                lib.nft_ctx_free(self._ctx)
                self._ctx = None
                return True
        finally:
            _done()

    def close(self) -> None:
        self.release()
