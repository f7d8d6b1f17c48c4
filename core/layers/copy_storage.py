"""A storage driver made of plain directories (vfs, fake); the id and option checks every
storage driver uses are in :mod:`.checks` (re-exported here)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from ..errors import Conflict, DockyardError, NotFound
from .changes import changes_size, tree_changes
from .checks import bool_option, check_config, check_id
from .export import export_changes
from .tarsplit import export_split
from .trees import copy_tree, remove_tree
from .unpack import extract
from .whiteouts import DeleteWhiteouts

class CopyStorage:
    """A storage driver of plain directories: no mounts, works without root.

    Layout: ``<root>/layers/<id>/{rootfs,parent,size}`` where ``rootfs`` is a full copy of the
    parent with the layer applied (whiteouts delete), and ``<root>/containers/<cid>/{rootfs,
    parent}`` likewise. ``mount()`` returns ``rootfs``; changes are a tree comparison with the
    parent layer (Docker's naive diff), exports are tars of those changes. A layer's
    ``tar-split`` (when the tar allows one) gives back its original tar byte for byte.
    """

    name = "copy"
    options = ("allow_devices",)
    #: optional contracts (dockyard.drivers.storage)
    capabilities = frozenset({"id-mapping"})

    def __init__(self, config: dict | None = None, root: Path | None = None,
                 state: Path | None = None) -> None:
        config = check_config(self.name, self.options, config, root)
        self.allow_devices = bool_option(config, "allow_devices", False, self.name)
        self.root = Path(root)
        self.state = Path(state) if state else None
        self.mounted: set[str] = set()
        self.idmap = None  # userns-remap (use_id_mapping)
        for sub in ("layers", "containers"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
            for junk in (self.root / sub).glob(".tmp-*"):
                remove_tree(junk)

    # paths
    def _layer(self, layer_id: str) -> Path:
        return self.root / "layers" / check_id(layer_id, "layer id")

    def _container(self, cid: str) -> Path:
        return self.root / "containers" / check_id(cid, "container id")

    def _require(self, path: Path, what: str) -> Path:
        if not (path / "rootfs").is_dir():
            raise NotFound(f"{what} {path.name} not found")
        return path

    def _ids(self, sub: str) -> list[str]:
        """The complete entries of ``layers`` or ``containers`` (not temp dirs)."""
        return sorted(p.name for p in (self.root / sub).iterdir()
                      if not p.name.startswith(".") and (p / "rootfs").is_dir())

    def _parent_rootfs(self, path: Path) -> Path | None:
        parent = (path / "parent").read_text()
        return self.root / "layers" / parent / "rootfs" if parent else None

    def _build(self, final: Path, parent: str | None, fill: Callable[[Path], int]) -> int:
        """Make ``final`` from a temp dir: rootfs = copy of parent, then ``fill(rootfs)``."""
        if final.exists():
            raise Conflict(f"{final.name} already exists")
        if parent is not None:
            self._require(self._layer(parent), "parent layer")
        tmp = final.parent / f".tmp-{final.name}-{secrets.token_hex(4)}"
        try:
            tmp.mkdir()
            if parent is None:
                (tmp / "rootfs").mkdir(0o755)
                if self.idmap is not None:
                    os.chown(tmp / "rootfs", self.idmap.root_uid, self.idmap.root_gid)
            else:
                copy_tree(self._layer(parent) / "rootfs", tmp / "rootfs")
            size = fill(tmp / "rootfs")
            (tmp / "parent").write_text(parent or "")
            (tmp / "size").write_text(str(size))
            try:
                tmp.rename(final)
            except OSError as exc:
                raise Conflict(f"{final.name} already exists") from exc
        except BaseException as exc:
            remove_tree(tmp)
            if isinstance(exc, OSError):
                raise DockyardError(f"create {final.name}: {exc}") from exc
            raise
        return size

    def status(self) -> list[list[str]]:
        return []

    def use_id_mapping(self, mapping) -> None:
        """``--userns-remap``: layers unpack with owners shifted into the mapping."""
        self.idmap = mapping

    # layers
    def create_layer(self, layer_id: str, parent: str | None, tar: BinaryIO) -> int:
        return self._build(self._layer(layer_id), parent, lambda rootfs: extract(
            tar, rootfs, DeleteWhiteouts(), allow_devices=self.allow_devices,
            split=rootfs.parent / "tar-split", idmap=self.idmap))

    def has_layer(self, layer_id: str) -> bool:
        return (self._layer(layer_id) / "rootfs").is_dir()

    def remove_layer(self, layer_id: str) -> None:
        remove_tree(self._layer(layer_id))

    def export_layer(self, layer_id: str) -> Iterator[bytes]:
        path = self._require(self._layer(layer_id), "layer")
        if (path / "tar-split").exists():
            return export_split(path / "tar-split", path / "rootfs")
        return export_changes(path / "rootfs", tree_changes(self._parent_rootfs(path), path / "rootfs"))

    def layer_size(self, layer_id: str) -> int:
        return int((self._require(self._layer(layer_id), "layer") / "size").read_text())

    def layers(self) -> list[str]:
        return self._ids("layers")

    # containers
    def create_rw(self, cid: str, parent: str | None) -> None:
        self._build(self._container(cid), parent, lambda rootfs: 0)

    def mount(self, cid: str) -> str:
        path = self._require(self._container(cid), "container")
        self.mounted.add(cid)
        return str(path / "rootfs")

    def unmount(self, cid: str) -> None:
        self.mounted.discard(cid)

    def is_mounted(self, cid: str) -> bool:
        return cid in self.mounted

    def remove_rw(self, cid: str) -> None:
        self.unmount(cid)
        remove_tree(self._container(cid))

    def changes(self, cid: str) -> list[dict]:
        path = self._require(self._container(cid), "container")
        return tree_changes(self._parent_rootfs(path), path / "rootfs")

    def export_changes(self, cid: str) -> Iterator[bytes]:
        path = self._require(self._container(cid), "container")
        return export_changes(path / "rootfs", self.changes(cid))

    def rw_size(self, cid: str) -> int:
        path = self._require(self._container(cid), "container")
        return changes_size(path / "rootfs", self.changes(cid))

    def containers(self) -> list[str]:
        return self._ids("containers")

    def close(self) -> None:
        pass

