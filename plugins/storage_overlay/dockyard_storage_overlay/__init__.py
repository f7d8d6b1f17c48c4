"""Dockyard storage drivers ``overlay`` (overlayfs, Docker overlay2 layout) and ``vfs``.

Entry points (group ``dockyard.storage``)::

    overlay = "dockyard_storage_overlay.overlay:OverlayDriver"
    vfs = "dockyard_storage_overlay.vfs:VfsDriver"

Each driver's module is imported when it is used (``from dockyard_storage_overlay import
VfsDriver`` still works): a daemon on overlay does not import vfs and its tar code.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .overlay import OverlayDriver
    from .vfs import VfsDriver

__all__ = ["OverlayDriver", "VfsDriver"]

_WHERE = {"OverlayDriver": "overlay", "VfsDriver": "vfs"}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
