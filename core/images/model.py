"""The image data model: layers, images, images staged for a commit and the rollback journal.

Shared by the image service, archives (``docker load``/``save``/``import``) and the registry
client, none of which imports another for these types.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..timestamps import now_rfc3339
from . import reference as R

__all__ = ["Image", "Layer", "PendingImage", "StagedLayer", "Txn", "host_arch", "now_rfc3339", "short_id"]


def host_arch() -> str:
    machine = os.uname().machine  # platform.machine(), without importing platform at idle
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}.get(machine, machine)


def short_id(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


@dataclass
class Layer:
    chain_id: str
    diff_id: str
    parent: str | None
    size: int  # unpacked size, as the driver reports it
    tar_size: int | None  # size of the uncompressed layer tar (the diff id's content)
    blob: str | None = None  # the original layer blob, kept when the driver cannot reproduce it
    blob_media_type: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"ChainID": self.chain_id, "DiffID": self.diff_id, "Parent": self.parent,
                "Size": self.size, "TarSize": self.tar_size, "Blob": self.blob,
                "BlobMediaType": self.blob_media_type}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Layer":
        return cls(d["ChainID"], d["DiffID"], d.get("Parent"), int(d.get("Size") or 0), d.get("TarSize"),
                   d.get("Blob"), d.get("BlobMediaType"))


@dataclass
class Image:
    id: str
    config: dict[str, Any]
    config_size: int
    parent: str = ""
    loaded_at: str = ""
    last_tag_time: str = ""
    chains: list[str] = field(default_factory=list)

    @property
    def diff_ids(self) -> list[str]:
        return list((self.config.get("rootfs") or {}).get("diff_ids") or [])

    @property
    def created(self) -> str:
        return self.config.get("created") or ""

    @property
    def labels(self) -> dict[str, str]:
        return (self.config.get("config") or {}).get("Labels") or {}

    def record(self) -> dict[str, Any]:
        return {"ID": self.id, "Parent": self.parent, "LoadedAt": self.loaded_at, "LastTagTime": self.last_tag_time}


@dataclass
class PendingImage:
    """One image of an archive, staged and verified, not yet committed."""

    config_bytes: bytes
    config: dict[str, Any]
    layer_files: list[Path]  # staged layer blobs (maybe compressed), one per diff id
    layer_hashes: list[str | None]  # sha256 of each staged file as stored (None: unknown)
    tags: list[R.Reference]
    staged: dict[int, "StagedLayer"] = field(default_factory=dict)  # layers already unpacked, by index


@dataclass
class StagedLayer:
    """A layer the driver unpacked (``stage_layer``) and that matched its diff id; it becomes
    a layer in :meth:`ImageService.commit_images`, or is dropped by ``discard_staged``."""

    handle: Any
    diff_id: str
    count: int  # bytes of the uncompressed tar
    committed: bool = False


@dataclass
class Txn:
    """What a mutation did so far, for rollback."""

    layers: list[str] = field(default_factory=list)
    blobs: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    old_refs: dict[str, str] | None = None
