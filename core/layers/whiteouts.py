"""Whiteouts: how a layer records deletions, and how each kind of driver stores them.

In a layer tar, ``dir/.wh.name`` deletes ``dir/name`` from the layers below and
``dir/.wh..wh..opq`` hides everything below in ``dir``. On disk, overlayfs wants a char device
0/0 and a ``trusted.overlay.opaque=y`` dir; copy-based drivers just delete.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Protocol

from .trees import remove_at

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
OPAQUE = ".wh..wh..opq"
OVERLAY_OPAQUE_XATTR = "trusted.overlay.opaque"


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

