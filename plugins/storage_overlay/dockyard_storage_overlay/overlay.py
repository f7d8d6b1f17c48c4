"""OverlayDriver: Docker overlay2's layout on overlayfs.

Layout under ``root``::

    l/<short>            -> ../<id>/diff   (short links, as overlay2)
    <layer>/diff         the unpacked layer (whiteouts: char dev 0/0; opaque: trusted.overlay.opaque=y)
    <layer>/link         its short id
    <layer>/lower        "l/<parent short>:l/<grandparent short>:..." (absent for a base layer)
    <layer>/size         bytes of file content unpacked (layers are immutable)
    <layer>/tar-split    the tar's headers and padding (gzip), no file data: with ``diff`` it
                         gives back the original tar byte for byte, so diff ids round-trip
    <cid>/diff, work, merged, lower   a container (``work`` marks it as one); ``empty`` is the
                         lower dir of a container without an image

Layers and containers are built in ``.tmp-*`` directories and renamed into place, so a
failure or crash leaves nothing that :meth:`layers` would list (the constructor deletes
``.tmp-*`` leftovers and the ``l/`` links of layers that never got their name).
``export_layer`` replays ``tar-split``; a tar that rewrites its own members (duplicate names)
has none and is exported as a deterministic walk of ``diff``.
"""

from __future__ import annotations

import base64
import logging
import os
import secrets
import stat
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO, Iterator

from dockyard import layers as L
from dockyard.errors import ConfigError, Conflict, DockyardError, InvalidArgument, NotFound, SkipPlugin
from dockyard.layers.trees import open_dir_at

from . import mounts

log = logging.getLogger("dockyard.storage.overlay")
_pool: ThreadPoolExecutor | None = None
_trash_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _detach(merged: str, rel: _Release) -> None:
    """Detach the overlay on ``merged`` and release it (see OverlayDriver.unmount)."""
    try:
        fd = mounts.detach(merged)
    except BaseException:
        rel.failed = True
        raise
    finally:
        rel.detached.set()
    if fd is not None:
        os.close(fd)


class _Release:
    """An unmount under way: ``detached`` is set once the mount left the namespace (or the
    detach ``failed``), ``future`` is done once the overlay is released (its superblock shut
    down, which syncs the upper filesystem)."""

    def __init__(self, merged: str) -> None:
        self.detached = threading.Event()
        self.failed = False
        self.future: Future[None] = _release_pool().submit(_detach, merged, self)


def _release_pool() -> ThreadPoolExecutor:
    """The threads that close the fds pinning detached overlays (see OverlayDriver.unmount)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="overlay-release")
        return _pool


def _trash_worker() -> ThreadPoolExecutor:
    """The thread that deletes removed containers' directories (see OverlayDriver.remove_rw):
    apart from the release pool, so that unmounts never queue behind a deletion."""
    global _trash_pool
    with _pool_lock:
        if _trash_pool is None:
            _trash_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="overlay-discard")
        return _trash_pool


def _result(fut: Future[None], cid: str) -> None:
    """Wait for a release or deletion; its error is logged (a kill would leave the same)."""
    try:
        fut.result()
    except OSError as exc:
        log.warning("unmounting the overlay of %s: %s", cid[:12], exc)


def _discard(trash: Path, rel: _Release | None, cid: str) -> None:
    """Delete a removed container's renamed directory once its overlay is released."""
    if rel is not None:
        _result(rel.future, cid)
    try:
        L.remove_tree(trash)
    except OSError as exc:  # the constructor deletes what is left (.tmp-*)
        log.warning("deleting the writable layer of %s: %s", cid[:12], exc)


_MAGIC_NAMES = {"ext4": "extfs", "ext3": "extfs", "ext2": "extfs"}
_NO_UPPER = {"overlay", "aufs", "nfs", "nfs4", "fuse", "ecryptfs"}  # cannot host upper dirs


class OverlayDriver:
    name = "overlay2"
    options = ("allow_devices", "mount_api")
    #: optional contracts (dockyard.drivers.storage): export_layer replays the tar-split, so
    #: the image store keeps no copy of layer blobs
    capabilities = frozenset({"id-mapping", "staging", "reproducible-export", "layer-info", "storage-opts"})

    @classmethod
    def check(cls) -> None:
        """Skip unless running as root on a kernel with overlayfs."""
        if os.geteuid() != 0:
            raise SkipPlugin("overlay needs root")
        with open("/proc/filesystems") as f:
            if not any(line.split()[-1:] == ["overlay"] for line in f):
                raise SkipPlugin("overlay is not in /proc/filesystems")

    def __init__(self, config: dict | None = None, root: Path | None = None,
                 state: Path | None = None) -> None:
        config = L.check_config("overlay", self.options, config, root)
        self.allow_devices = L.bool_option(config, "allow_devices", False, "overlay")
        self.mount_api = config.get("mount_api", "auto")
        if self.mount_api not in ("auto", "new", "legacy"):
            raise ConfigError(f"storage overlay: mount_api must be auto, new or legacy, not {self.mount_api!r}")
        if root is None:
            raise ConfigError("storage overlay: the daemon gives no data root")
        Path(root).mkdir(parents=True, exist_ok=True)
        self.root = Path(os.path.realpath(root))
        self.state = Path(state) if state else None
        self.backing = mounts.filesystem_of(str(self.root))
        if self.backing in _NO_UPPER:
            raise SkipPlugin(f"overlay: {self.root} is on {self.backing}, which cannot hold upper dirs")
        (self.root / "l").mkdir(exist_ok=True)
        for junk in self.root.glob(".tmp-*"):
            L.remove_tree(junk)
        for link in (self.root / "l").iterdir():  # made for a layer whose rename a crash cut short
            if link.is_symlink() and not link.exists():
                link.unlink()
        self._lock = threading.Lock()  # mount/unmount of one driver never interleave
        # unmounted containers whose overlay superblock is still being released (see unmount)
        self._releasing: dict[str, _Release] = {}
        # removed containers' directories (renamed ``.tmp-rm-*``) being deleted (see remove_rw)
        self._discarding: set[Future[None]] = set()
        self.idmap = None  # userns-remap: owners shifted into the mapping (use_id_mapping)

    def use_id_mapping(self, mapping) -> None:
        """``--userns-remap``: layers unpack with shifted owners; upper dirs belong to the
        mapping's root (the daemon's data root is per mapping, so nothing is mixed)."""
        self.idmap = mapping

    def _own_root(self, path: Path) -> None:
        if self.idmap is not None:
            os.chown(path, self.idmap.root_uid, self.idmap.root_gid)

    def status(self) -> list[list[str]]:
        return [["Backing Filesystem", _MAGIC_NAMES.get(self.backing, self.backing)],
                ["Supports d_type", "true"], ["Using metacopy", "false"],
                ["Native Overlay Diff", "true"]]

    # -- paths -----------------------------------------------------------------------------
    def _dir(self, ident: str) -> Path:
        if ident == "l":
            raise InvalidArgument("invalid id 'l'")
        return self.root / L.check_id(ident)

    def _is_layer(self, path: Path) -> bool:
        return (path / "link").is_file() and not (path / "work").exists()

    def _is_container(self, path: Path) -> bool:
        return (path / "work").is_dir()

    def _layer(self, layer_id: str) -> Path:
        path = self._dir(layer_id)
        if not self._is_layer(path):
            raise NotFound(f"layer {layer_id} not found")
        return path

    def _container(self, cid: str) -> Path:
        path = self._dir(cid)
        if not self._is_container(path):
            raise NotFound(f"container {cid} not found")
        return path

    def _lower_chain(self, parent: str | None) -> str:
        """The ``lower`` value of a child of ``parent``: its link first, then its lowers."""
        if parent is None:
            return ""
        path = self._layer(parent)
        chain = ["l/" + (path / "link").read_text()]
        if (path / "lower").exists():
            chain.append((path / "lower").read_text())
        return ":".join(chain)

    def _lower_dirs(self, lower: str) -> list[Path]:
        """The diff dirs of a ``lower`` value, top-most first."""
        return [self.root / "l" / entry[2:] for entry in lower.split(":") if entry]

    def _build(self, final: Path, parent: str | None, fill) -> int:
        """Create ``final`` via a temp dir; ``fill(tmp)`` populates it and returns a size."""
        if final.exists():
            raise Conflict(f"{final.name} already exists")
        lower = self._lower_chain(parent)
        tmp = self.root / f".tmp-{final.name}-{secrets.token_hex(4)}"
        link = None
        try:
            tmp.mkdir()
            (tmp / "diff").mkdir(0o755)
            if lower:
                (tmp / "lower").write_text(lower)
            size, link = fill(tmp)
            try:
                tmp.rename(final)
            except OSError as exc:
                raise Conflict(f"{final.name} already exists") from exc
        except BaseException as exc:
            if link is not None:
                link.unlink(missing_ok=True)
            L.remove_tree(tmp)
            if isinstance(exc, OSError):
                raise DockyardError(f"create {final.name}: {exc}") from exc
            raise
        return size

    # -- layers ----------------------------------------------------------------------------
    def create_layer(self, layer_id: str, parent: str | None, tar: BinaryIO) -> int:
        final = self._dir(layer_id)

        def fill(tmp: Path):
            self._own_root(tmp / "diff")
            size = L.extract(tar, tmp / "diff", L.OverlayWhiteouts(), allow_devices=self.allow_devices,
                             split=tmp / "tar-split", idmap=self.idmap)
            short = base64.b32encode(secrets.token_bytes(16)).decode()[:26]
            link = self.root / "l" / short
            os.symlink(f"../{layer_id}/diff", link)
            (tmp / "link").write_text(short)
            (tmp / "size").write_text(str(size))
            return size, link

        return self._build(final, parent, fill)

    # Staging splits create_layer in two, so that layers can be unpacked in parallel (and while
    # they download) before their parents exist: stage_layer unpacks into a ``.tmp-stage-*``
    # directory, commit_staged gives it its id, parent chain and link. discard_staged drops it.
    def stage_layer(self, tar: BinaryIO) -> Path:
        tmp = self.root / f".tmp-stage-{secrets.token_hex(8)}"
        try:
            tmp.mkdir()
            (tmp / "diff").mkdir(0o755)
            self._own_root(tmp / "diff")
            size = L.extract(tar, tmp / "diff", L.OverlayWhiteouts(), allow_devices=self.allow_devices,
                             split=tmp / "tar-split", idmap=self.idmap)
            (tmp / "size").write_text(str(size))
        except BaseException as exc:
            L.remove_tree(tmp)
            if isinstance(exc, OSError):
                raise DockyardError(f"unpack layer: {exc}") from exc
            raise
        return tmp

    def commit_staged(self, layer_id: str, parent: str | None, staged: Path) -> int:
        final = self._dir(layer_id)
        if final.exists():
            raise Conflict(f"{layer_id} already exists")
        lower = self._lower_chain(parent)
        if lower:
            (staged / "lower").write_text(lower)
        short = base64.b32encode(secrets.token_bytes(16)).decode()[:26]
        link = self.root / "l" / short
        os.symlink(f"../{layer_id}/diff", link)
        try:
            (staged / "link").write_text(short)
            staged.rename(final)
        except BaseException as exc:
            link.unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise DockyardError(f"create {layer_id}: {exc}") from exc
            raise
        return int((final / "size").read_text())

    def discard_staged(self, staged: Path) -> None:
        L.remove_tree(staged)

    def has_layer(self, layer_id: str) -> bool:
        return self._is_layer(self._dir(layer_id))

    def remove_layer(self, layer_id: str) -> None:
        path = self._dir(layer_id)
        if not self._is_layer(path):
            if path.exists() and self._is_container(path):
                raise Conflict(f"{layer_id} is a container, not a layer")
            return
        short = (path / "link").read_text()
        (self.root / "l" / short).unlink(missing_ok=True)
        L.remove_tree(path)

    def export_layer(self, layer_id: str) -> Iterator[bytes]:
        path = self._layer(layer_id)
        if (path / "tar-split").exists():
            return L.export_split(path / "tar-split", path / "diff")
        return L.export_dir(path / "diff", L.overlay_whiteout)

    def layer_size(self, layer_id: str) -> int:
        return int((self._layer(layer_id) / "size").read_text())

    def layer_info(self, layer_id: str) -> dict[str, str]:
        """``GraphDriver.Data`` of an image whose top layer is ``layer_id``, as dockerd's
        overlay2 shows it (``LowerDir`` only when the layer has parents)."""
        path = self._layer(layer_id)
        data = {}
        lowers = self._lowers_of(path)
        if lowers:
            data["LowerDir"] = ":".join(os.path.realpath(p) for p in lowers)
        data.update(MergedDir=str(path / "merged"), UpperDir=str(path / "diff"), WorkDir=str(path / "work"))
        return data

    def validate_storage_opts(self, opts: dict[str, str]) -> None:
        """No per-container option is applied (``size`` needs xfs project quotas: dockerd's
        wording when they are missing)."""
        for key in opts:
            if key == "size":
                raise InvalidArgument("--storage-opt is supported only for overlay over xfs with 'pquota' mount option")
            raise InvalidArgument(f"Unknown option {key}")

    def layers(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir()
                      if not p.name.startswith(".") and p.name != "l" and self._is_layer(p))

    # -- containers ------------------------------------------------------------------------
    def create_rw(self, cid: str, parent: str | None) -> None:
        def fill(tmp: Path):
            (tmp / "work").mkdir(0o700)
            (tmp / "merged").mkdir(0o755)
            self._own_root(tmp / "diff")  # the container's "/" (overlay takes the upper dir's owner)
            if parent is None:
                (tmp / "empty").mkdir(0o755)
            return 0, None

        self._build(self._dir(cid), parent, fill)

    def _lowers_of(self, path: Path) -> list[Path]:
        lower = path / "lower"
        return self._lower_dirs(lower.read_text()) if lower.exists() else []

    def mount(self, cid: str) -> str:
        path = self._container(cid)
        merged = str(path / "merged")
        self._released(cid)  # the kernel refuses an upper dir an older overlay still uses
        with self._lock:
            if mounts.is_mountpoint(merged):
                return merged
            try:
                self._mount(path, merged)
            except OSError as exc:
                raise DockyardError(f"mount {cid}: {exc}") from exc
        return merged

    def _mount(self, path: Path, merged: str) -> None:
        lower_file = path / "lower"
        lower = lower_file.read_text().split(":") if lower_file.exists() else [f"{path.name}/empty"]
        upper, work = f"{path.name}/diff", f"{path.name}/work"
        if self.mount_api != "legacy":
            try:
                mounts.mount_overlay([str(self.root / p) for p in lower], str(self.root / upper),
                                     str(self.root / work), merged)
                return
            except OSError:
                if self.mount_api == "new":
                    raise
                self.mount_api = "legacy"  # this kernel has no lowerdir+: stop trying
        mounts.mount_overlay_legacy(str(self.root), lower, upper, work, merged)

    def unmount(self, cid: str) -> None:
        """Unmount the container's overlay from a worker thread: the caller (an exit being
        recorded, on the daemon's event loop) waits neither for the unmount's RCU grace
        period nor for the superblock's shutdown, which syncs the upper filesystem (several
        ms each on a busy host). ``mount``, ``remove_rw`` and ``is_mounted``' callers that
        mount again wait for it (see ``_released``); its errors are logged there."""
        merged = str(self._dir(cid) / "merged")
        with self._lock:
            if cid not in self._releasing:  # one under way detaches this mount already
                self._releasing[cid] = _Release(merged)

    def _released(self, cid: str) -> None:
        """Wait until the overlay ``unmount`` detached is gone (not holding the driver's lock:
        other containers' mounts go on meanwhile)."""
        with self._lock:
            rel = self._releasing.pop(cid, None)
        if rel is not None:
            _result(rel.future, cid)

    def is_mounted(self, cid: str) -> bool:
        """After ``unmount`` returned: False (an unmount under way is waited for first)."""
        self._released(cid)
        return mounts.is_mountpoint(str(self._dir(cid) / "merged"))

    def remove_rw(self, cid: str) -> None:
        """Unmount, then rename the directory to ``.tmp-rm-*`` (atomic) and delete that: a
        crash leaves the container whole or a ``.tmp-*`` the constructor deletes. What an
        interrupted removal of an older version left (no ``work``, no ``merged``, maybe no
        ``diff``) is removed too: only a real layer (with a ``link``) is refused.

        Only the detach and the rename are waited for: the overlay's release (which syncs the
        upper filesystem) and the deletion of the renamed directory (a journal wait per
        unlink on a busy ext4) finish in a worker thread (``close`` waits for them), so a
        ``docker rm`` does not wait for the disk. Once this returns the container is neither
        mounted nor listed by :meth:`containers`."""
        path = self._dir(cid)
        if not path.exists():
            return
        if self._is_layer(path):
            raise Conflict(f"{cid} is a layer, not a container")
        self.unmount(cid)
        with self._lock:
            rel = self._releasing.pop(cid, None)
        if rel is not None:
            rel.detached.wait()
            if rel.failed:
                _result(rel.future, cid)  # logged; unmounted again below, or this fails
                rel = None
        if rel is None:  # the detach failed: a mount still there keeps its directory
            mounts.unmount(str(path / "merged"))
        # not named after the container: nothing named by its id is left once this returns
        trash = self.root / f".tmp-rm-{secrets.token_hex(8)}"
        try:
            path.rename(trash)
        except FileNotFoundError:
            return
        fut = _trash_worker().submit(_discard, trash, rel, cid)
        with self._lock:
            self._discarding.add(fut)
        fut.add_done_callback(self._discarded)

    def _discarded(self, fut: Future[None]) -> None:
        with self._lock:
            self._discarding.discard(fut)

    def changes(self, cid: str) -> list[dict]:
        path = self._container(cid)
        return overlay_changes(self._lowers_of(path), path / "diff")

    def export_changes(self, cid: str) -> Iterator[bytes]:
        return L.export_dir(self._container(cid) / "diff", L.overlay_whiteout)

    def rw_size(self, cid: str) -> int:
        return L.dir_size(self._container(cid) / "diff")

    def containers(self) -> list[str]:
        """Every directory that is not a layer: containers, and what an interrupted removal
        left of one (start-up reconciliation removes those it has no record of)."""
        return sorted(p.name for p in self.root.iterdir()
                      if not p.name.startswith(".") and p.name != "l" and p.is_dir() and not self._is_layer(p))

    def close(self) -> None:
        """Mounts of running containers stay (live-restore). Waits for the deletions that
        ``remove_rw`` left to a worker (what a kill leaves, the constructor deletes)."""
        with self._lock:
            pending = list(self._discarding)
        for fut in pending:
            _result(fut, "")


def _exists_in(lowers: list[Path], rel: str) -> os.stat_result | None:
    for lower in lowers:
        try:
            return os.lstat(lower / rel)
        except (FileNotFoundError, NotADirectoryError):
            continue
    return None


def overlay_changes(lowers: list[Path], upper: Path) -> list[dict]:
    """Docker's overlay ``changes``: walk the upper dir; whiteouts and opaque dirs that hide
    something are deletions, entries present below are modifications, others additions; the
    parent of an addition or deletion is reported modified if not already reported."""
    changes: list[dict] = []
    changed_dirs: set[str] = set()

    # through directory fds opened with O_NOFOLLOW: the upper dir is a running container's,
    # which may swap a directory for a symlink to the host while it is walked
    def walk(rel: str, fd: int) -> None:
        with os.scandir(fd) as it:
            entries = sorted(it, key=lambda d: d.name)
        for d in entries:
            child = f"{rel}/{d.name}" if rel else d.name
            try:
                st = d.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # removed meanwhile
            path = "/" + child
            kind = L.overlay_whiteout(Path(f"/proc/self/fd/{fd}/{d.name}"), st)
            below = _exists_in(lowers, child)
            record = True
            if kind == "whiteout" or (kind == "opaque" and below is not None):
                change = 2
            elif below is None:
                change = 1
            elif (stat.S_ISDIR(st.st_mode) and stat.S_ISDIR(below.st_mode)
                  and (st.st_mode, st.st_size, st.st_mtime_ns)
                  == (below.st_mode, below.st_size, below.st_mtime_ns)):
                record = False  # same directory: not a change by itself
                change = 0
            else:
                change = 0
            if record:
                if stat.S_ISDIR(st.st_mode):
                    changed_dirs.add(path)
                parent = path.rsplit("/", 1)[0]
                if change in (1, 2) and parent and parent not in changed_dirs:
                    changes.append({"Path": parent, "Kind": 0})
                    changed_dirs.add(parent)
                changes.append({"Path": path, "Kind": change})
            if stat.S_ISDIR(st.st_mode) and (sub := open_dir_at(fd, d.name)) is not None:
                try:
                    walk(child, sub)
                finally:
                    os.close(sub)

    top = open_dir_at(None, upper)
    if top is not None:
        try:
            walk("", top)
        finally:
            os.close(top)
    return changes
