"""Storage drivers (``dockyard.storage``): read-only image layers and containers' writable layers.

The image store owns content (blobs, digests, manifests); a storage driver owns the
filesystem view. Layers are keyed by opaque ids chosen by the image store (the layer's
*chain id* without the ``sha256:`` prefix, as Docker does), containers by container id.

Methods are synchronous and may block on disk I/O; the daemon calls the slow ones
(``create_layer``, ``export_layer``, ``export_changes``, ``remove_*``) in a worker thread.
Every method leaves nothing half-done: on failure it removes what it created and raises a
:class:`dockyard.errors.DockyardError` (``InvalidArgument`` for a bad tar).

Drivers are constructed as ``cls(config=dict, root=Path, state=Path)`` and may define a
classmethod ``check()`` raising :class:`dockyard.errors.SkipPlugin`.

:class:`StorageDriver` is what every driver has; the optional capabilities are the
Protocols of :data:`STORAGE_CAPABILITIES`, named in the class attribute ``capabilities`` and
checked once when the driver loads (:mod:`dockyard.drivers.contracts`).
"""

from __future__ import annotations

from typing import Any, BinaryIO, Iterator, Protocol, TypedDict, runtime_checkable


class Change(TypedDict):
    """One entry of ``GET /containers/{id}/changes``: Kind 0 modified, 1 added, 2 deleted."""

    Path: str
    Kind: int


@runtime_checkable
class StorageDriver(Protocol):
    name: str  # what ``docker info`` shows as "Storage Driver"

    def status(self) -> list[list[str]]:
        """``DriverStatus`` pairs for ``GET /info`` (e.g. ``[["Backing Filesystem", "extfs"]]``)."""
        ...

    # -- image layers (read-only, shared between images) --------------------------------

    def create_layer(self, layer_id: str, parent: str | None, tar: BinaryIO) -> int:
        """Unpack an *uncompressed* layer tar stream on top of ``parent``; return its size in bytes.

        Hostile input is refused whole (``InvalidArgument``, nothing left behind): ``..`` or
        absolute member names, hard links whose targets escape the layer (or are not earlier
        members), device nodes (except whiteouts), members under a symlinked directory.
        Symlinks themselves are data and may point anywhere; extraction never follows one. Whiteouts (``.wh.name``,
        ``.wh..wh..opq``) become this driver's representation of deletions.
        """
        ...

    def has_layer(self, layer_id: str) -> bool: ...

    def remove_layer(self, layer_id: str) -> None:
        """Remove a layer; missing is fine. The image store ensures no child or container uses it."""
        ...

    def export_layer(self, layer_id: str) -> Iterator[bytes]:
        """The layer's own changes as an uncompressed tar stream, deletions as tar whiteouts.

        Exporting a layer created from a tar gives a tar with the same diff id when the driver
        kept the original (overlay and vfs both do, as tar-split metadata: headers and padding,
        not file data), so ``docker save`` round-trips digests. Otherwise the export is
        deterministic: the same content gives the same bytes.
        """
        ...

    def layer_size(self, layer_id: str) -> int: ...

    def layers(self) -> list[str]:
        """Ids of all layers present (for reconciliation)."""
        ...

    # -- containers' writable layers --------------------------------------------------------

    def create_rw(self, cid: str, parent: str | None) -> None:
        """Create the writable layer of container ``cid`` over image layer ``parent``."""
        ...

    def mount(self, cid: str) -> str:
        """Mount the container's root filesystem (in the daemon's mount namespace) and return
        its path. Idempotent: mounting a mounted container returns the same path."""
        ...

    def unmount(self, cid: str) -> None:
        """Unmount; idempotent. Never leaves a mount behind, even if files are busy (lazy detach).
        The work may finish in the background (overlay: in a worker thread); ``mount``,
        ``remove_rw`` and ``is_mounted`` wait for it."""
        ...

    def is_mounted(self, cid: str) -> bool:
        """Whether the container's rootfs is mounted; False once ``unmount`` has returned."""
        ...

    def remove_rw(self, cid: str) -> None:
        """Unmount if needed and delete the writable layer; missing is fine."""
        ...

    def changes(self, cid: str) -> list[Change]:
        """What the container changed compared to its image (``docker diff``)."""
        ...

    def export_changes(self, cid: str) -> Iterator[bytes]:
        """The writable layer as an uncompressed tar with whiteouts (``docker commit``)."""
        ...

    def rw_size(self, cid: str) -> int:
        """Bytes used by the writable layer (``SizeRw``)."""
        ...

    def containers(self) -> list[str]:
        """Ids of all writable layers present (for reconciliation)."""
        ...

    def close(self) -> None:
        """Called at daemon shutdown. Mounts of running containers stay (live-restore)."""
        ...


@runtime_checkable
class IdMappedStorage(Protocol):
    """Optional capability, checked when the daemon loads the driver with ``--userns-remap``:
    the driver unpacks layers with their owners shifted by the mapping (``idmap`` of
    :func:`dockyard.layers.extract`) and gives each writable layer's root to the mapping's
    root (``root_uid``/``root_gid``), so root in the container's user namespace owns its
    files. A driver without it cannot be used with remapping (the daemon refuses to start)."""

    def use_id_mapping(self, mapping: Any) -> None:
        """Called once, before any layer is created (``mapping``: a
        :class:`dockyard.userns.IdMapping`)."""
        ...


@runtime_checkable
class StagingStorage(Protocol):
    """``staging``: layers are unpacked in parallel before their parents exist (``docker
    load``/pull), then committed in order. The image store checks the content's digest while
    the driver unpacks; nothing is visible as a layer before :meth:`commit_staged`."""

    def stage_layer(self, tar: BinaryIO) -> Any:
        """Unpack an uncompressed layer tar into a private staging place; return a handle.
        Refuses hostile input like :meth:`StorageDriver.create_layer` (nothing left behind)."""
        ...

    def commit_staged(self, layer_id: str, parent: str | None, staged: Any) -> int:
        """Make the staged content layer ``layer_id`` over ``parent``; return its size."""
        ...

    def discard_staged(self, staged: Any) -> None:
        """Drop a staged layer that will not be committed; missing is fine."""
        ...


class ExportingStorage(Protocol):
    """``reproducible-export``: a promise, not a method. :meth:`StorageDriver.export_layer`
    gives back the exact tar the layer was created from (overlay2 replays its tar-split), so
    the image store keeps no copy of layer blobs for ``docker save``. A driver that is not
    sure must not declare it (the store then keeps the blobs: always correct, more disk)."""


@runtime_checkable
class LayerInfoStorage(Protocol):
    """``layer-info``: ``GraphDriver.Data`` of ``docker image inspect``."""

    def layer_info(self, layer_id: str) -> dict[str, str]:
        """Docker's GraphDriver data for an image whose top layer is ``layer_id`` (overlay2:
        ``LowerDir``, ``MergedDir``, ``UpperDir``, ``WorkDir``)."""
        ...


@runtime_checkable
class StorageOptsStorage(Protocol):
    """``storage-opts``: per-container ``HostConfig.StorageOpt`` (``--storage-opt``)."""

    def validate_storage_opts(self, opts: dict[str, str]) -> None:
        """Raise :class:`dockyard.errors.InvalidArgument` (Docker's wording) for any option
        the driver cannot apply. Without this capability every StorageOpt is refused."""
        ...


#: capability name -> Protocol (``None`` for a promise that no method can show)
STORAGE_CAPABILITIES: dict[str, type | None] = {
    "id-mapping": IdMappedStorage,
    "staging": StagingStorage,
    "reproducible-export": None,
    "layer-info": LayerInfoStorage,
    "storage-opts": StorageOptsStorage,
}
