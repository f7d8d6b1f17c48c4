"""nftables from Python: libnftables through ctypes (0.2 ms a batch), ``nft -f -`` otherwise.

A batch is one transaction: it applies whole or not at all. A context talks netlink in the
network namespace of the thread that made it (the embedded DNS makes one inside a container's).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import shutil
import subprocess
import threading
from typing import Any

from .errors import DockyardError


class NftError(DockyardError):
    """nftables refused a batch."""


class Nft:
    def __init__(self) -> None:
        self._lock = threading.Lock()  # a libnftables context is not thread-safe
        self._ctx = None
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
            self._ctx = lib.nft_ctx_new(0)
            lib.nft_ctx_buffer_output(self._ctx)
            lib.nft_ctx_buffer_error(self._ctx)
        self._lib: Any = lib
        self.backend = "libnftables" if self._ctx else "nft"
        if self._ctx is None and shutil.which("nft") is None:
            raise NftError("neither libnftables nor the nft command is installed")

    def run(self, text: str) -> str:
        """Run an nft script; return its output. A refused script raises :class:`NftError`."""
        if self._ctx is not None:
            with self._lock:
                rc = self._lib.nft_run_cmd_from_buffer(self._ctx, text.encode())
                out = (self._lib.nft_ctx_get_output_buffer(self._ctx) or b"").decode()
                err = (self._lib.nft_ctx_get_error_buffer(self._ctx) or b"").decode()
        else:
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

    def close(self) -> None:
        if self._ctx is not None:
            self._lib.nft_ctx_free(self._ctx)
            self._ctx = None
