"""FakeStorage: a plain-directory storage driver (entry point ``fake`` in ``dockyard.storage``).

For API tests: no root, no mounts. Each layer is a full copy of its parent with the layer
applied; a container's root filesystem is a copy of its image's top layer, and ``mount()``
returns that directory. Behaviour (changes, exports, hostile tars) is the real one from
:class:`dockyard.layers.CopyStorage`; every call is also recorded in ``calls`` as
``(method, id)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO, Iterator

from dockyard.layers import CopyStorage


class FakeStorage(CopyStorage):
    name = "fake"

    @classmethod
    def check(cls) -> None:
        """Always available."""

    def __init__(self, config: dict | None = None, root: Path | None = None,
                 state: Path | None = None) -> None:
        super().__init__(config, root, state)
        self.calls: list[tuple[str, str]] = []

    def status(self) -> list[list[str]]:
        return [["Backing Filesystem", "fake"]]

    def create_layer(self, layer_id: str, parent: str | None, tar: BinaryIO) -> int:
        self.calls.append(("create_layer", layer_id))
        return super().create_layer(layer_id, parent, tar)

    def remove_layer(self, layer_id: str) -> None:
        self.calls.append(("remove_layer", layer_id))
        super().remove_layer(layer_id)

    def export_layer(self, layer_id: str) -> Iterator[bytes]:
        self.calls.append(("export_layer", layer_id))
        return super().export_layer(layer_id)

    def create_rw(self, cid: str, parent: str | None) -> None:
        self.calls.append(("create_rw", cid))
        super().create_rw(cid, parent)

    def mount(self, cid: str) -> str:
        self.calls.append(("mount", cid))
        return super().mount(cid)

    def unmount(self, cid: str) -> None:
        self.calls.append(("unmount", cid))
        super().unmount(cid)

    def remove_rw(self, cid: str) -> None:
        self.calls.append(("remove_rw", cid))
        super().remove_rw(cid)

    def export_changes(self, cid: str) -> Iterator[bytes]:
        self.calls.append(("export_changes", cid))
        return super().export_changes(cid)
