"""Dockyard storage drivers ``overlay`` (overlayfs, Docker overlay2 layout) and ``vfs``.

Entry points (group ``dockyard.storage``)::

    overlay = "dockyard_storage_overlay.overlay:OverlayDriver"
    vfs = "dockyard_storage_overlay.vfs:VfsDriver"
"""

from .overlay import OverlayDriver
from .vfs import VfsDriver

__all__ = ["OverlayDriver", "VfsDriver"]
