"""VfsDriver: every layer a full copy of its parent (``cp -a --reflink=auto``), no mounts.

Slow and disk-hungry but works on any filesystem, including inside another overlay. The
implementation is :class:`dockyard.layers.CopyStorage` (shared with the fake driver):
whiteouts delete while unpacking; ``changes``/exports compare a tree with its parent layer
as Docker's naive diff does.
"""

from __future__ import annotations

from dockyard.layers import CopyStorage


class VfsDriver(CopyStorage):
    name = "vfs"

    @classmethod
    def check(cls) -> None:
        """Always usable."""
