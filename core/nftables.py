"""nftables from Python: libnftables through ctypes (0.2 ms a batch), ``nft -f -`` otherwise.

A batch is one transaction: it applies whole or not at all. A context talks netlink in the
network namespace of the thread that made it (the embedded DNS makes one inside a container's).
A context is made at the first batch, in the calling thread, and :func:`release_idle` frees
every context when the daemon is quiet (the API's memory janitor, issue 18): a context keeps
libnftables' copy of the ruleset it listed (3.4 MB of heap at an idle daemon here, for the
default bridge's start-up batches); a new one costs 0.07 ms. That is sound because the daemon
never runs a batch of a long-lived :class:`Nft` from a thread in a container's namespace
(:func:`dockyard.networks.netns.run_in` uses a thread of its own, which makes its own context).
"""

from __future__ import annotations

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


_lib_lock = threading.Lock()
_lib: Any = None
_lib_looked_up = False
_instances: "weakref.WeakSet[Nft]" = weakref.WeakSet()


def _library() -> Any:
    """libnftables, once per process (None when it is not installed)."""
    global _lib, _lib_looked_up
    with _lib_lock:
        if not _lib_looked_up:
            try:
                lib = ctypes.CDLL(ctypes.util.find_library("nftables") or "libnftables.so.1")
            except OSError:
                lib = None
            if lib is not None:
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
            _lib, _lib_looked_up = lib, True
        return _lib


def release_idle() -> int:
    """Free the context of every :class:`Nft` (the next batch makes a new one); how many."""
    with _lib_lock:
        live = list(_instances)
    return sum(1 for nft in live if nft.release())


class Nft:
    def __init__(self) -> None:
        self._lock = threading.Lock()  # a libnftables context is not thread-safe
        self._ctx: Any = None
        self._lib: Any = _library()
        self.backend = "libnftables" if self._lib is not None else "nft"
        if self._lib is None and shutil.which("nft") is None:
            raise NftError("neither libnftables nor the nft command is installed")
        if self._lib is not None:
            with _lib_lock:
                _instances.add(self)

    def _context(self) -> Any:
        if self._ctx is None:  # under self._lock
            ctx = self._lib.nft_ctx_new(0)
            if ctx:
                self._lib.nft_ctx_buffer_output(ctx)
                self._lib.nft_ctx_buffer_error(ctx)
            self._ctx = ctx
        return self._ctx

    def run(self, text: str) -> str:
        """Run an nft script; return its output. A refused script raises :class:`NftError`."""
        if self._lib is not None:
            with self._lock:
                ctx = self._context()
                if ctx:
                    rc = self._lib.nft_run_cmd_from_buffer(ctx, text.encode())
                    out = (self._lib.nft_ctx_get_output_buffer(ctx) or b"").decode()
                    err = (self._lib.nft_ctx_get_error_buffer(ctx) or b"").decode()
                    if rc != 0:
                        raise NftError(f"nftables: {err.strip() or 'failed'}")
                    return out
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
        with self._lock:
            if self._ctx is None:
                return False
            self._lib.nft_ctx_free(self._ctx)
            self._ctx = None
            return True

    def close(self) -> None:
        self.release()
