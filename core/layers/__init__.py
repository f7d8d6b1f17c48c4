"""Layer tars for storage drivers: safe extraction, deterministic export, tree changes.

One module a job; this package re-exports their public names, so ``from dockyard import
layers as L`` and ``from dockyard.layers import X`` keep working:

* :mod:`.unpack`: :func:`extract` of a hostile layer tar into a directory;
* :mod:`.whiteouts`: whiteout names, how a driver records deletions while unpacking
  (:class:`DeleteWhiteouts`, :class:`OverlayWhiteouts`) and how overlay's are recognised
  on export (:func:`overlay_whiteout`);
* :mod:`.tarsplit`: what to keep while unpacking to give back the original layer tar byte for
  byte (:func:`export_split`);
* :mod:`.export`: deterministic tars of a directory or of a list of changes;
* :mod:`.changes`: Docker's naive diff of two trees and the size of the changes;
* :mod:`.trees`: removing, copying and measuring directory trees;
* :mod:`.tarfmt`: block, chunk and read sizes and the PAX key of xattrs;
* :mod:`.copy_storage`: :class:`CopyStorage`, the storage driver made of plain directories
  (vfs, fake); :mod:`.checks`: the id/option checks every driver uses.

The names are imported at their first use (``__getattr__``), not with the package.
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .changes import changes_size, tree_changes
    from .checks import bool_option, check_config, check_id
    from .copy_storage import CopyStorage
    from .export import Classifier, Entry, export_changes, export_dir, tar_info, tar_stream, walk_entries
    from .tarfmt import BLOCK, CHUNK, READ_SIZE, TRAILING_LIMIT, XATTR_PAX_PREFIX
    from .tarsplit import export_split
    from .trees import copy_tree, dir_size, remove_at, remove_tree
    from .unpack import clean_name, extract
    from .whiteouts import (OPAQUE, OVERLAY_OPAQUE_XATTR, WHITEOUT_META_PREFIX, WHITEOUT_PREFIX,
                            DeleteWhiteouts, OverlayWhiteouts, WhiteoutStrategy, overlay_whiteout)

#: public name -> the module it comes from, imported at the first use of one of its names: a
#: daemon that never loads, exports or diffs a layer does not import tarfile, gzip and the
#: unpacker (issue 18, idle memory)
_WHERE = {
    **dict.fromkeys(("changes_size", "tree_changes"), "changes"),
    **dict.fromkeys(("bool_option", "check_config", "check_id"), "checks"),
    "CopyStorage": "copy_storage",
    **dict.fromkeys(("Classifier", "Entry", "export_changes", "export_dir", "tar_info", "tar_stream",
                     "walk_entries"), "export"),
    **dict.fromkeys(("BLOCK", "CHUNK", "READ_SIZE", "TRAILING_LIMIT", "XATTR_PAX_PREFIX"), "tarfmt"),
    "export_split": "tarsplit",
    **dict.fromkeys(("copy_tree", "dir_size", "remove_at", "remove_tree"), "trees"),
    **dict.fromkeys(("clean_name", "extract"), "unpack"),
    **dict.fromkeys(("OPAQUE", "OVERLAY_OPAQUE_XATTR", "WHITEOUT_META_PREFIX", "WHITEOUT_PREFIX",
                     "DeleteWhiteouts", "OverlayWhiteouts", "WhiteoutStrategy", "overlay_whiteout"), "whiteouts"),
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))


__all__ = [
    "BLOCK", "CHUNK", "OPAQUE", "OVERLAY_OPAQUE_XATTR", "READ_SIZE", "TRAILING_LIMIT",
    "WHITEOUT_META_PREFIX", "WHITEOUT_PREFIX", "XATTR_PAX_PREFIX",
    "Classifier", "CopyStorage", "DeleteWhiteouts", "Entry", "OverlayWhiteouts", "WhiteoutStrategy",
    "bool_option", "changes_size", "check_config", "check_id", "clean_name", "copy_tree", "dir_size",
    "export_changes", "export_dir", "export_split", "extract", "overlay_whiteout", "remove_at",
    "remove_tree", "tar_info", "tar_stream", "tree_changes", "walk_entries",
]
