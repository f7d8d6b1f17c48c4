"""The image service: images, references and layers on top of a storage driver.

On disk, under ``<data-root>/image``::

    blobs/sha256/<hex>        image configs (and OCI manifests written by save), content-addressed
    images/<hex>.json         one record per image: parent, when it was loaded, last tag time
    layers/<chain hex>.json   one record per layer: chain id, diff id, parent, sizes
    repositories.json         references: {"refs": {"docker.io/library/busybox:latest": "sha256:..."}}
    tmp/                      staging for loads, imports, commits and build contexts (emptied at start)
    intent.json               what a commit of images (load, import, pull, commit, build) under way
                              will create: a daemon killed half-way rolls it back at start

Layers are keyed in the storage driver by their chain id without ``sha256:``. A layer is
referenced by every image whose chain contains it; it is removed when no image does.
Every mutation runs under one lock in a worker thread and rolls back whole on failure.

Crashes: ``commit_images`` writes its intent (the images it creates, the old value of each
reference it moves) before the first layer and removes it after the references are saved. A
daemon killed in between (crash points ``image.commit.*``) finds the intent at start: the new
image records go, the references get their old values back, and the garbage collection that
follows removes the layers, driver directories and blobs nothing uses any more: the old state.
"""

from __future__ import annotations

import asyncio
import builtins
import functools
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable

from .. import filters as F
from ..crashpoints import crashpoint
from ..errors import Conflict, InvalidArgument, NoSuchImage, NotFound, Unavailable
from ..timestamps import parse_rfc3339
from . import reference as R
from .model import Image, Layer, PendingImage, StagedLayer, Txn, host_arch, now_rfc3339, short_id
from .store import CHUNK, ContentStore, DigestMismatch, read_json, split_digest, write_json_atomic
from .streams import ByteStream

log = logging.getLogger("dockyard.images")

IMAGE_LIST_FILTERS = ("dangling", "label", "label!", "before", "since", "reference", "until")
PRUNE_FILTERS = ("dangling", "label", "label!", "until")
ZERO_TIME = "0001-01-01T00:00:00Z"
EMPTY_TAR_DIGEST = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"  # 1024 zero bytes

InUse = Callable[[str], list[Any]]



@functools.lru_cache(maxsize=1024)
def _parsed(name: str) -> tuple[R.Reference | None, str | None]:
    """``name`` parsed as a reference (None if it is not one) and, without a digest, the
    reference-store key a tag resolves by (``busybox`` -> ``docker.io/library/busybox:latest``).
    A pure function of the text, kept: every ``docker ps`` resolves each container's image
    name, and the parse took ~8 us."""
    ref = R.try_parse(name)
    return ref, (str(ref.with_default_tag()) if ref is not None and ref.digest is None else None)

class ImageService:
    """Images for the API and for the containers service (``resolve``, ``top_layer``, ``config``).

    ``in_use(image_id)`` returns the containers using an image: ids (stopped) or
    ``(id, running)`` pairs; the containers service sets it.
    """

    def __init__(self, root: Path, driver: Any, events: Any = None,
                 loop: asyncio.AbstractEventLoop | None = None, tar_cache_limit: int | None = None) -> None:
        self.root = Path(root)
        self.driver = driver
        self.events = events
        self.loop = loop
        self.in_use: InUse = lambda image_id: []
        # Drivers that give back the exact layer tar (overlay2 replays its tar-split) need no
        # copy of it; for the others (vfs, fake: their exports are regenerated from the tree)
        # the original blob is kept, a hard link of the staged file, so that ``docker save``
        # round-trips image IDs. A driver says so with its ``reproducible-export`` capability.
        from ..drivers import contracts

        self.caps = contracts.record("storage", driver).capabilities if driver is not None else frozenset()
        self.keep_layer_blobs = "reproducible-export" not in self.caps
        self.lock = threading.RLock()
        self.root.mkdir(parents=True, exist_ok=True)
        self.blobs = ContentStore(self.root)
        self.images_dir = self.root / "images"
        self.layers_dir = self.root / "layers"
        self.tmp_dir = self.root / "tmp"
        for d in (self.images_dir, self.layers_dir, self.tmp_dir):
            d.mkdir(parents=True, exist_ok=True)
        self.refs_path = self.root / "repositories.json"
        self.intent_path = self.root / "intent.json"
        self.images: dict[str, Image] = {}
        self.layers: dict[str, Layer] = {}
        self.refs: dict[str, str] = {}
        # images `rmi -f` deleted while stopped containers use them (moby deletes the image, the
        # containers keep its layers): invisible to every lookup, their layers kept until the
        # last of those containers is gone (release); the record says "Held"
        self.held: dict[str, Image] = {}
        # docker save's layer tar cache (dockyard.images.layercache): only where layer tars
        # are re-created from the files (no blobs kept)
        self.tar_cache: Any = None
        if driver is not None and not self.keep_layer_blobs and tar_cache_limit != 0:
            from .layercache import DEFAULT_LIMIT, LayerTarCache

            self.tar_cache = LayerTarCache(self.root / "layer-tars",
                                           DEFAULT_LIMIT if tar_cache_limit is None else tar_cache_limit,
                                           lambda d: any(l.diff_id == d for l in list(self.layers.values())))
        self._restore()
        if self.tar_cache is not None:
            self.tar_cache.keep_only({layer.diff_id for layer in self.layers.values()})

    # -- startup ---------------------------------------------------------------------------

    def _restore(self) -> None:
        for p in self.tmp_dir.iterdir():
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
        for p in self.layers_dir.glob("*.json"):
            try:
                layer = Layer.from_json(read_json(p))
                self.layers[layer.chain_id] = layer
            except (ValueError, KeyError, TypeError):
                log.warning("dropping unreadable layer record %s", p)
                p.unlink()
        for p in self.images_dir.glob("*.json"):
            try:
                rec = read_json(p)
                image_id = rec["ID"]
                data = self.blobs.read(image_id)
                image = self._image_from_config(image_id, data, rec)
            except (ValueError, KeyError, TypeError, NotFound) as exc:
                log.warning("dropping image record %s: %s", p.name, exc)
                p.unlink()
                continue
            missing = [c for c in image.chains if c not in self.layers]
            if missing:
                log.warning("image %s misses layers %s: dropped", short_id(image.id), missing)
                p.unlink()
                continue
            (self.held if rec.get("Held") else self.images)[image.id] = image
        stored = (read_json(self.refs_path, {}) or {}).get("refs", {})
        refs = dict(stored)
        self._undo_intent(refs)
        self.refs = {k: v for k, v in refs.items() if v in self.images}
        if self.refs != stored:
            self._save_refs()
        self._collect_garbage()
        self.intent_path.unlink(missing_ok=True)  # after the collection: a crash in it redoes it

    def _undo_intent(self, refs: dict[str, str]) -> None:
        """Roll back the commit of images a crash interrupted (see the module): drop the image
        records it created and give the references it moved their old values (in ``refs``)."""
        try:
            intent = read_json(self.intent_path, None)
        except ValueError:
            intent = None
        if not isinstance(intent, dict):
            return
        log.warning("rolling back an interrupted image %s (%d images)", intent.get("Op", "commit"),
                    len(intent.get("Images") or []))
        for image_id in intent.get("Images") or []:
            if isinstance(image_id, str) and (image_id in self.images or image_id in self.held):
                self.images.pop(image_id, None)
                self.held.pop(image_id, None)
                (self.images_dir / f"{split_digest(image_id)}.json").unlink(missing_ok=True)
        for key, old in (intent.get("Refs") or {}).items():
            if old:
                refs[key] = old
            else:
                refs.pop(key, None)

    def _write_intent(self, op: str, pending: builtins.list[PendingImage]) -> None:
        ids = ["sha256:" + __import__("hashlib").sha256(p.config_bytes).hexdigest() for p in pending]
        write_json_atomic(self.intent_path, {
            "Op": op, "Images": [i for i in dict.fromkeys(ids) if i not in self.images and i not in self.held],
            "Refs": {str(r): self.refs.get(str(r)) for p in pending for r in p.tags}})

    def _collect_garbage(self) -> None:
        """Remove what a crash left: layers no image uses, configs no image has."""
        used = {c for img in (*self.images.values(), *self.held.values()) for c in img.chains}
        for chain in sorted(set(self.layers) - used, key=lambda c: -self._depth(c)):
            log.info("removing unused layer %s", chain)
            self._remove_layer(chain)
        if self.driver is not None:
            try:
                present = set(self.driver.layers())
            except Exception:  # a driver without listing support
                present = set()
            for layer_id in present - {split_digest(c) for c in self.layers}:
                log.info("removing orphaned driver layer %s", layer_id)
                try:
                    self.driver.remove_layer(layer_id)
                except Exception:
                    log.exception("removing orphaned layer %s failed", layer_id)
        keep = set(self.images) | set(self.held) | {l.blob for l in self.layers.values() if l.blob}
        for digest in list(self.blobs.digests()):
            if digest not in keep:
                self.blobs.delete(digest)

    def _depth(self, chain: str) -> int:
        n, cur = 0, self.layers.get(chain)
        while cur is not None and cur.parent:
            n += 1
            cur = self.layers.get(cur.parent)
        return n

    def _image_from_config(self, image_id: str, data: bytes, rec: dict[str, Any]) -> Image:
        config = json.loads(data)
        if not isinstance(config, dict):
            raise ValueError("image config is not a JSON object")
        image = Image(image_id, config, len(data), parent=rec.get("Parent") or "",
                      loaded_at=rec.get("LoadedAt") or "", last_tag_time=rec.get("LastTagTime") or "")
        image.chains = R.chain_ids(image.diff_ids)
        return image

    # -- helpers ---------------------------------------------------------------------------

    def require_driver(self) -> Any:
        if self.driver is None:
            raise Unavailable("no storage driver is loaded: image operations need one "
                              "(start dockyardd with -s overlay or -s vfs)")
        return self.driver

    def emit(self, action: str, actor: str, **attrs: str) -> None:
        if self.events is None:
            return
        if self.loop is not None and self.loop.is_running() and _off_loop(self.loop):
            self.loop.call_soon_threadsafe(lambda: self.events.emit("image", action, actor, **attrs))
        else:
            self.events.emit("image", action, actor, **attrs)

    def _save_refs(self) -> None:
        write_json_atomic(self.refs_path, {"refs": dict(sorted(self.refs.items()))})

    def _save_image(self, image: Image) -> None:
        write_json_atomic(self.images_dir / f"{split_digest(image.id)}.json", image.record())

    def refs_of(self, image_id: str) -> list[R.Reference]:
        return [R.parse(k) for k, v in sorted(self.refs.items()) if v == image_id]

    def repo_tags(self, image_id: str) -> list[str]:
        return [r.familiar for r in self.refs_of(image_id) if r.tag and not r.digest]

    def repo_digests(self, image_id: str) -> list[str]:
        return [r.familiar for r in self.refs_of(image_id) if r.digest]

    def layer_refcount(self, chain: str) -> int:
        return sum(1 for img in (*self.images.values(), *self.held.values()) if chain in img.chains)

    def image_size(self, image: Image) -> int:
        return sum(self.layers[c].size for c in image.chains if c in self.layers)

    def children(self, image_id: str) -> list[str]:
        return [i.id for i in self.images.values() if i.parent == image_id]

    def _containers_using(self, image_id: str) -> list[tuple[str, bool]]:
        out = []
        for item in self.in_use(image_id) or []:
            if isinstance(item, (tuple, list)):
                out.append((str(item[0]), bool(item[1])))
            else:
                out.append((str(item), False))
        return out

    # -- lookup ----------------------------------------------------------------------------

    def resolve(self, name: str) -> Image:
        """Full id, ``sha256:`` (prefix), name[:tag], name@digest, or a unique short id prefix."""
        if not name:
            raise NoSuchImage(name)
        if name.startswith("sha256:"):
            hexpart = name[7:]
            if re.fullmatch(r"[0-9a-f]{1,64}", hexpart):
                return self._by_prefix(hexpart, name)
            raise NoSuchImage(name)
        if R.is_full_id(name):
            image = self.images.get("sha256:" + name)
            if image is None:
                raise NoSuchImage(name)
            return image
        ref, tag_key = _parsed(name)
        if ref is not None:
            if tag_key is None:
                image_id = self.refs.get(str(ref))
                if image_id is None and ref.tag is not None:  # name:tag@digest: the digest wins
                    image_id = self.refs.get(str(R.Reference(ref.domain, ref.path, None, ref.digest)))
                if image_id is not None:
                    return self.images[image_id]
            else:
                image_id = self.refs.get(tag_key)
                if image_id is not None:
                    return self.images[image_id]
        if re.fullmatch(r"[0-9a-f]{1,63}", name):
            return self._by_prefix(name, name)
        if ref is None and not re.fullmatch(r"[0-9a-f]+", name):
            raise InvalidArgument("invalid reference format")
        raise NoSuchImage(name)

    def _ref_key(self, name: str) -> str | None:
        """The reference-store key ``name`` resolves through, or None (it names an id)."""
        if name.startswith("sha256:") or R.is_full_id(name):
            return None
        ref = R.try_parse(name)
        if ref is None:
            return None
        keys = [str(ref)] if ref.digest else [str(ref.with_default_tag())]
        if ref.digest and ref.tag:
            keys.append(str(R.Reference(ref.domain, ref.path, None, ref.digest)))
        for key in keys:
            if key in self.refs:
                return key
        return None

    def add_reference(self, ref: R.Reference, image_id: str) -> None:
        """Point ``ref`` (a tag or ``name@digest``) at an image: a pushed image's RepoDigest."""
        with self.lock:
            if image_id not in self.images:
                raise NoSuchImage(image_id)
            self.refs[str(ref)] = image_id
            self._save_refs()

    def _by_prefix(self, prefix: str, name: str) -> Image:
        matches = [i for i in self.images if i[7:].startswith(prefix)]
        if not matches:
            raise NoSuchImage(name)
        if len(matches) > 1:
            raise InvalidArgument(f"multiple IDs found with provided prefix: {prefix}")
        return self.images[matches[0]]

    def config(self, image_id: str) -> dict[str, Any]:
        return self.images[image_id].config

    def top_layer(self, image_id: str) -> str | None:
        """The storage driver's layer id of an image's top layer (None for an empty image)."""
        chains = self.images[image_id].chains
        return split_digest(chains[-1]) if chains else None

    # -- views -----------------------------------------------------------------------------

    def summary(self, image: Image, *, shared: dict[str, int] | None = None) -> dict[str, Any]:
        size = self.image_size(image)
        out = {
            "Id": image.id,
            "ParentId": image.parent,
            "RepoTags": self.repo_tags(image.id),
            "RepoDigests": self.repo_digests(image.id),
            "Created": int(parse_rfc3339(image.created)),
            "Size": size,
            "SharedSize": -1,
            "VirtualSize": size,
            "Labels": image.labels or {},
            "Containers": -1,
        }
        if shared is not None:
            out["SharedSize"] = sum(self.layers[c].size for c in image.chains
                                    if c in self.layers and shared.get(c, 0) > 1)
        return out

    def list(self, filters: F.Filters, all_: bool = False, shared_size: bool = False) -> list[dict[str, Any]]:
        images = list(self.images.values())
        dangling = F.bool_value(filters, "dangling")
        before = since = None
        if "before" in filters:
            before = min(parse_rfc3339(self.resolve(v).created) for v in filters["before"])
        if "since" in filters:
            since = max(parse_rfc3339(self.resolve(v).created) for v in filters["since"])
        until = _until(filters)
        patterns = filters.get("reference", [])
        counts = self._chain_counts() if shared_size else None
        out = []
        for image in images:
            refs = self.refs_of(image.id)
            if dangling is not None and dangling != (not refs):
                continue
            if not all_ and not refs and self.children(image.id):
                continue
            created = parse_rfc3339(image.created)
            if before is not None and not created < before:
                continue
            if since is not None and not created > since:
                continue
            if until is not None and not created < until:
                continue
            if not F.labels_match(filters, image.labels):
                continue
            summary = self.summary(image, shared=counts)
            if patterns:
                matched = [r for r in refs if any(_ref_match(p, r) for p in patterns)]
                if not matched:
                    continue
                summary["RepoTags"] = [r.familiar for r in matched if r.tag and not r.digest]
                summary["RepoDigests"] = [r.familiar for r in matched if r.digest]
            out.append(summary)
        out.sort(key=lambda s: (-s["Created"], s["Id"]))
        return out

    def _chain_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for img in self.images.values():
            for c in img.chains:
                counts[c] = counts.get(c, 0) + 1
        return counts

    def inspect(self, name: str) -> dict[str, Any]:
        image = self.resolve(name)
        c = image.config
        size = self.image_size(image)
        graph: dict[str, Any] = {"Name": self.driver.name if self.driver is not None else "none", "Data": None}
        top = self.top_layer(image.id)
        if "layer-info" in self.caps and top is not None:
            try:
                graph["Data"] = self.driver.layer_info(top)
            except Exception:
                log.debug("layer_info failed", exc_info=True)
        return {
            "Id": image.id,
            "RepoTags": self.repo_tags(image.id),
            "RepoDigests": self.repo_digests(image.id),
            "Parent": image.parent,
            "Comment": c.get("comment", ""),
            "Created": image.created or ZERO_TIME,
            "Container": c.get("container", ""),
            "ContainerConfig": c.get("container_config") or _empty_container_config(),
            "DockerVersion": c.get("docker_version", ""),
            "Author": c.get("author", ""),
            "Config": c.get("config") or _empty_container_config(),
            "Architecture": c.get("architecture", ""),
            **({"Variant": c["variant"]} if c.get("variant") else {}),
            "Os": c.get("os", ""),
            **({"OsVersion": c["os.version"]} if c.get("os.version") else {}),
            "Size": size,
            "VirtualSize": size,
            "GraphDriver": graph,
            "RootFS": {"Type": (c.get("rootfs") or {}).get("type", "layers"), "Layers": image.diff_ids},
            "Metadata": {"LastTagTime": image.last_tag_time or ZERO_TIME},
        }

    def history(self, name: str) -> builtins.list[dict[str, Any]]:
        image = self.resolve(name)
        c = image.config
        entries = list(c.get("history") or [])
        if not entries:
            entries = [{"created": image.created, "created_by": ""} for _ in image.chains]
        out = []
        li = 0
        for h in entries:
            size = 0
            if not h.get("empty_layer"):
                if li < len(image.chains):
                    layer = self.layers.get(image.chains[li])
                    size = layer.size if layer else 0
                li += 1
            out.append({"Id": "<missing>", "Created": int(parse_rfc3339(h.get("created"))),
                        "CreatedBy": h.get("created_by", ""), "Tags": None, "Size": size,
                        "Comment": h.get("comment", "")})
        out.reverse()
        if out:
            out[0]["Id"] = image.id
            out[0]["Tags"] = self.repo_tags(image.id) or None
        return out

    def df(self) -> dict[str, Any]:
        counts = self._chain_counts()
        images = []
        for image in self.images.values():
            s = self.summary(image, shared=counts)
            s["Containers"] = len(self._containers_using(image.id))
            images.append(s)
        images.sort(key=lambda s: (-s["Created"], s["Id"]))
        return {"LayersSize": sum(l.size for l in self.layers.values()), "Images": images}

    def info(self) -> dict[str, Any]:
        return {"Images": len(self.images)}

    # -- tag -------------------------------------------------------------------------------

    def tag(self, name: str, repo: str, tag: str | None) -> R.Reference:
        image = self.resolve(name)
        if not repo:
            raise InvalidArgument("repository name must have at least one component")
        ref = R.parse(repo)
        if ref.digest is not None:
            raise InvalidArgument("refusing to create a tag with a digest reference")
        ref = ref.with_tag(tag) if tag else ref.with_default_tag()
        with self.lock:
            old = dict(self.refs)
            self.refs[str(ref)] = image.id
            image.last_tag_time = now_rfc3339()
            try:
                self._save_refs()
                self._save_image(image)
            except BaseException:
                self.refs = old
                raise
        self.emit("tag", image.id, name=ref.familiar)
        return ref

    # -- delete and prune -----------------------------------------------------------------

    def delete(self, name: str, force: bool = False, prune: bool = True) -> builtins.list[dict[str, str]]:
        self.require_driver()
        with self.lock:
            image = self.resolve(name)
            records: builtins.list[dict[str, str]] = []
            ref_key = self._ref_key(name)
            removed_repo_ref = False
            if ref_key is not None:
                ref = R.parse(ref_key)
                remaining = [r for r in self.refs_of(image.id) if str(r) != str(ref)]
                if not remaining and not force:
                    using = self._containers_using(image.id)
                    if using:
                        raise Conflict(
                            f'conflict: unable to remove repository reference "{name}" (must force) - '
                            f"container {using[0][0][:12]} is using its referenced image {short_id(image.id)}")
                self._untag(str(ref), records)
                remaining = [r for r in self.refs_of(image.id)]
                # a removed tag leaves digest references of the same repository: clean them up too
                if ref.tag and remaining and all(r.digest for r in remaining):
                    for r in remaining:
                        if r.name == ref.name:
                            self._untag(str(r), records)
                    remaining = self.refs_of(image.id)
                if remaining:
                    self._save_refs()
                    return records
                removed_repo_ref = True
            else:
                refs = self.refs_of(image.id)
                if len({r.name for r in refs}) <= 1 and len([r for r in refs if r.tag]) <= 1:
                    self._check_conflicts(image, hard_only=force, soft_except_refs=True)
                    for r in refs:
                        self._untag(str(r), records)
            try:
                self._delete_helper(image, records, force, prune, quiet=removed_repo_ref)
            finally:
                self._save_refs()
            return records

    def _untag(self, key: str, records: builtins.list[dict[str, str]]) -> None:
        image_id = self.refs.pop(key)
        familiar = R.familiar(key)
        records.append({"Untagged": familiar})
        self.emit("untag", image_id, name=familiar)

    def _check_conflicts(self, image: Image, *, hard_only: bool, soft_except_refs: bool = False) -> None:
        sid = short_id(image.id)
        using = self._containers_using(image.id)
        for cid, running in using:
            if running:
                raise Conflict(f"conflict: unable to delete {sid} (cannot be forced) - "
                               f"image is being used by running container {cid[:12]}")
        if self.children(image.id):
            raise Conflict(f"conflict: unable to delete {sid} (cannot be forced) - image has dependent child images")
        if hard_only:
            return
        if not soft_except_refs and len(self.refs_of(image.id)) > 1:
            raise Conflict(f"conflict: unable to delete {sid} (must be forced) - "
                           "image is referenced in multiple repositories")
        for cid, _running in using:
            raise Conflict(f"conflict: unable to delete {sid} (must be forced) - "
                           f"image is being used by stopped container {cid[:12]}")

    def _delete_helper(self, image: Image, records: builtins.list[dict[str, str]], force: bool, prune: bool,
                       quiet: bool) -> None:
        try:
            self._check_conflicts(image, hard_only=force)
        except Conflict:
            used = bool(self._containers_using(image.id))
            if quiet and (self.refs_of(image.id) or used or self.children(image.id)):
                return
            raise
        for r in self.refs_of(image.id):
            self._untag(str(r), records)
        self._save_refs()
        if self._containers_using(image.id):
            # forced, only stopped containers (a running one is a hard conflict above): the image
            # is deleted as moby does; the containers' rootfs stands on its layers, kept (held)
            # until the last of them is gone
            removed = self._hold(image)
        else:
            removed = self._delete_image(image)
        self.emit("delete", image.id)
        records.append({"Deleted": image.id})
        records.extend({"Deleted": c} for c in removed)
        parent = self.images.get(image.parent) if prune and image.parent else None
        if parent is not None and not self.refs_of(parent.id):
            self._delete_helper(parent, records, False, prune, quiet=True)

    def _hold(self, image: Image) -> builtins.list[str]:
        """Delete ``image`` for every lookup but keep its layers and config for the containers
        that use it (see ``held``); no layer is removed."""
        write_json_atomic(self.images_dir / f"{split_digest(image.id)}.json", {**image.record(), "Held": True})
        self.images.pop(image.id, None)
        self.held[image.id] = image
        return []

    def release(self, image_id: str) -> None:
        """A held image no container uses any more goes, with the layers no image uses."""
        with self.lock:
            image = self.held.get(image_id)
            if image is None or self._containers_using(image_id):
                return
            del self.held[image_id]
            removed = self._delete_image(image)
        log.info("released deleted image %s (%d layers removed)", short_id(image_id), len(removed))

    def release_unused(self) -> None:
        """At start, once the containers are known: release what a crash left held."""
        for image_id in list(self.held):
            self.release(image_id)

    def _delete_image(self, image: Image) -> builtins.list[str]:
        """Drop the record, the config blob and the layers no other image uses; return those layers."""
        self.images.pop(image.id, None)
        (self.images_dir / f"{split_digest(image.id)}.json").unlink(missing_ok=True)
        self.blobs.delete(image.id)
        removed = []
        for chain in reversed(image.chains):
            if chain in self.layers and self.layer_refcount(chain) == 0:
                self._remove_layer(chain)
                removed.append(chain)
        return removed

    def _remove_layer(self, chain: str) -> None:
        if self.driver is not None:
            self.driver.remove_layer(split_digest(chain))
        (self.layers_dir / f"{split_digest(chain)}.json").unlink(missing_ok=True)
        layer = self.layers.pop(chain, None)
        if layer is not None and layer.blob and not any(l.blob == layer.blob for l in self.layers.values()):
            self.blobs.delete(layer.blob)
        if (layer is not None and self.tar_cache is not None
                and not any(l.diff_id == layer.diff_id for l in self.layers.values())):
            self.tar_cache.remove(layer.diff_id)

    def prune(self, filters: F.Filters) -> dict[str, Any]:
        self.require_driver()
        dangling = F.bool_value(filters, "dangling")
        if dangling is None:
            dangling = True
        until = _until(filters)
        deleted: builtins.list[dict[str, str]] = []
        reclaimed = 0
        with self.lock:
            for image in sorted(self.images.values(), key=lambda i: -len(i.chains)):
                if image.id not in self.images:
                    continue
                if dangling and self.refs_of(image.id):
                    continue
                if self._containers_using(image.id) or self.children(image.id):
                    continue
                if until is not None and not parse_rfc3339(image.created) < until:
                    continue
                if not F.labels_match(filters, image.labels):
                    continue
                sizes = {c: self.layers[c].size for c in image.chains if c in self.layers}
                records: builtins.list[dict[str, str]] = []
                for r in self.refs_of(image.id):
                    self._untag(str(r), records)
                self._save_refs()
                removed = self._delete_image(image)
                self.emit("delete", image.id)
                records.append({"Deleted": image.id})
                records.extend({"Deleted": c} for c in removed)
                reclaimed += sum(sizes.get(c, 0) for c in removed)
                deleted.extend(records)
            if self.tar_cache is not None:  # only a cache: pruning is asking for the space
                reclaimed += self.tar_cache.clear()
        self.emit("prune", "", reclaimed=str(reclaimed))
        return {"ImagesDeleted": deleted or None, "SpaceReclaimed": reclaimed}

    # -- commit: from staged, verified content to images --------------------------------------

    def commit_images(self, pending: builtins.list[PendingImage], progress: Callable[[dict[str, Any]], None],
                      event: str = "load", parent: str = "") -> builtins.list[tuple[Image, builtins.list[R.Reference]]]:
        """Create layers, configs, images and references for staged images; all or nothing,
        also across a crash (the intent, see the module). ``parent``: the new images' parent."""
        driver = self.require_driver()
        txn = Txn()
        out: builtins.list[tuple[Image, builtins.list[R.Reference]]] = []
        with self.lock:
            txn.old_refs = dict(self.refs)
            try:
                self._write_intent(event, pending)
                crashpoint("image.commit.intent")
                for p in pending:
                    out.append((self._commit_one(driver, p, txn, progress, parent), p.tags))
                crashpoint("image.commit.record")
                self._save_refs()
                crashpoint("image.commit.refs")
            except BaseException:
                self._rollback(txn)
                self.intent_path.unlink(missing_ok=True)
                raise
            self.intent_path.unlink(missing_ok=True)
        for image, tags in out:
            self.emit(event, image.id, name=tags[0].familiar if tags else image.id)
        return out

    def _commit_one(self, driver: Any, p: PendingImage, txn: Txn, progress: Callable[[dict[str, Any]], None],
                    parent_id: str = "") -> Image:
        image_id = "sha256:" + __import__("hashlib").sha256(p.config_bytes).hexdigest()
        diff_ids = list((p.config.get("rootfs") or {}).get("diff_ids") or [])
        if len(diff_ids) != len(p.layer_files):
            raise InvalidArgument(f"invalid manifest, layers length mismatch: expected {len(diff_ids)}, "
                                  f"got {len(p.layer_files)}")
        for d in diff_ids:
            split_digest(d)
        chains = R.chain_ids(diff_ids)
        parent: str | None = None
        for i, (path, known, diff, chain) in enumerate(zip(p.layer_files, p.layer_hashes, diff_ids, chains)):
            staged = p.staged.get(i)
            if chain not in self.layers and staged is not None and staged.diff_id == diff:
                self._commit_staged(driver, staged, chain, parent, txn, progress)
            elif chain not in self.layers:
                self._create_layer(driver, path, known, diff, chain, parent, txn, progress)
            elif known != diff:  # already present: still make sure the archive says the truth
                from .streams import HashingReader, decompressed

                with open(path, "rb") as f:
                    reader = HashingReader(decompressed(f))
                    reader.drain()
                if reader.digest != diff:
                    raise DigestMismatch(f"layer digest mismatch: config says {diff}, content is {reader.digest}")
            parent = chain
            crashpoint("image.commit.layer")
        _, created = self.blobs.write(p.config_bytes, image_id)
        if created:
            txn.blobs.append(image_id)
        crashpoint("image.commit.config")
        image = self.images.get(image_id)
        if image is None:
            image = self._image_from_config(image_id, p.config_bytes, {"LoadedAt": now_rfc3339(), "Parent": parent_id})
            self.images[image_id] = image
            txn.images.append(image_id)
        elif parent_id and image.parent != parent_id:
            image.parent = parent_id
        for ref in p.tags:
            old = self.refs.get(str(ref))
            if old is not None and old != image_id:
                progress({"stream": f"The image {ref.familiar} already exists, renaming the old one with ID "
                                    f"{old} to empty string\n"})
            self.refs[str(ref)] = image_id
        if p.tags:
            image.last_tag_time = now_rfc3339()
        self._save_image(image)
        return image

    def _create_layer(self, driver: Any, path: Path, known: str | None, diff: str, chain: str,
                      parent: str | None, txn: Txn, progress: Callable[[dict[str, Any]], None]) -> None:
        from .streams import HashingReader, IterReader, decompressed

        if not path.exists():
            # a load streamed this member into another chain's layer (no staged file): the
            # same content again from that layer's export, still checked against the diff id
            same = next((la for la in self.layers.values() if la.diff_id == diff), None)
            if same is None:
                raise DigestMismatch(f"layer {diff}: no content for it in the archive")
            raw_src: Any = __import__("io").BufferedReader(
                IterReader(driver.export_layer(split_digest(same.chain_id))), CHUNK)
            known, total = None, same.tar_size or 0
            where: Callable[[int], int] = lambda n: n  # noqa: E731
        else:
            raw_src = open(path, "rb")
            total = path.stat().st_size
            where = lambda n: raw.tell()  # noqa: E731
        sid = split_digest(diff)[:12]
        last = [0.0]

        def on_progress(n: int) -> None:
            t = time.monotonic()
            if t - last[0] > 0.2:
                last[0] = t
                progress(_progress("Loading layer", sid, min(where(n), total), total))

        with raw_src as raw:
            # a staged file whose digest (taken while staging it) is the diff id needs no second hash
            reader = HashingReader(decompressed(raw), on_progress, verified=diff if known == diff else None)
            buffered = __import__("io").BufferedReader(reader, CHUNK)
            size = driver.create_layer(split_digest(chain), split_digest(parent) if parent else None, buffered)
            txn.layers.append(chain)
            buffered.read()  # whatever the driver left (tar padding) still counts for the digest
            reader.drain()
        if reader.digest != diff:
            raise DigestMismatch(f"layer digest mismatch: config says {diff}, content is {reader.digest}")
        layer = Layer(chain, diff, parent, int(size or 0), reader.count)
        if self.keep_layer_blobs:
            self._keep_blob(layer, path, known or diff, txn)
        write_json_atomic(self.layers_dir / f"{split_digest(chain)}.json", layer.to_json())
        self.layers[chain] = layer
        progress(_progress("Loading layer", sid, total, total))

    # -- staged layers: unpacked in parallel, before their parents exist ----------------------

    def can_stage(self) -> bool:
        """Whether layers can be unpacked ahead of the commit (the driver has ``stage_layer``
        and no original blob needs keeping, since there is no staged file to keep)."""
        return "staging" in self.caps and not self.keep_layer_blobs

    def stage_layer(self, stream: ByteStream, diff_id: str) -> StagedLayer:
        """Decompress, hash and unpack ``stream`` in one pass (call from a worker thread).
        The content is checked against ``diff_id`` before anything can be committed; on a
        mismatch or any error the driver's staging directory is discarded."""
        from .streams import HashingReader, decompressed

        driver = self.require_driver()
        reader = HashingReader(decompressed(stream))
        buffered = __import__("io").BufferedReader(reader, CHUNK)
        handle = driver.stage_layer(buffered)
        try:
            buffered.read()  # tar padding still counts for the digest
            reader.drain()
            if reader.digest != diff_id:
                raise DigestMismatch(f"layer digest mismatch: config says {diff_id}, content is {reader.digest}")
        except BaseException:
            driver.discard_staged(handle)
            raise
        return StagedLayer(handle, diff_id, reader.count)

    def discard_staged(self, staged: StagedLayer) -> None:
        if not staged.committed:
            self.require_driver().discard_staged(staged.handle)

    def _commit_staged(self, driver: Any, staged: StagedLayer, chain: str, parent: str | None, txn: Txn,
                       progress: Callable[[dict[str, Any]], None]) -> None:
        size = driver.commit_staged(split_digest(chain), split_digest(parent) if parent else None, staged.handle)
        staged.committed = True
        txn.layers.append(chain)
        layer = Layer(chain, staged.diff_id, parent, int(size or 0), staged.count)
        write_json_atomic(self.layers_dir / f"{split_digest(chain)}.json", layer.to_json())
        self.layers[chain] = layer
        sid = split_digest(staged.diff_id)[:12]
        progress(_progress("Loading layer", sid, staged.count, staged.count))

    def _keep_blob(self, layer: Layer, path: Path, digest: str, txn: Txn) -> None:
        """Keep the staged layer file (a hard link, no copy) as the layer's blob."""
        from .streams import sniff

        with open(path, "rb") as f:
            kind = sniff(f.read(8))
        media = {"none": "application/vnd.oci.image.layer.v1.tar",
                 "gzip": "application/vnd.oci.image.layer.v1.tar+gzip"}.get(kind)
        if media is None:
            return
        dest = self.blobs.path(digest)
        if not dest.exists():
            with open(path, "rb") as f:
                os.fsync(f.fileno())
            os.link(path, dest)
            from .store import fsync_dir

            fsync_dir(dest.parent)
            txn.blobs.append(digest)
        layer.blob, layer.blob_media_type = digest, media

    def _rollback(self, txn: Txn) -> None:
        if txn.old_refs is not None and txn.old_refs != self.refs:
            self.refs = txn.old_refs
            try:
                self._save_refs()
            except Exception:
                log.exception("rollback: restoring references failed")
        for image_id in txn.images:
            self.images.pop(image_id, None)
            (self.images_dir / f"{split_digest(image_id)}.json").unlink(missing_ok=True)
        for chain in reversed(txn.layers):
            try:
                self._remove_layer(chain)
            except Exception:
                log.exception("rollback: removing layer %s failed", chain)
        for digest in txn.blobs:
            self.blobs.delete(digest)

    # -- commit: a container's changes as a new image ----------------------------------------

    def commit(self, parent_id: str | None, layer: ByteStream, container_config: dict[str, Any], *,
               container_id: str = "", comment: str = "", author: str = "", created_by: str = "",
               ref: R.Reference | None = None) -> Image:
        """``docker commit``: a new image made of the parent's layers plus ``layer`` (an
        uncompressed tar with whiteouts; an empty tar adds no layer, as Docker does), with
        ``container_config`` as its config and one history entry appended to the parent's."""
        from .streams import HashingReader

        self.require_driver()
        # a container whose image `rmi -f` deleted still commits: its parent is the held image
        parent = (self.images.get(parent_id) or self.held.get(parent_id)) if parent_id else None
        if parent_id and parent is None:
            raise NoSuchImage(parent_id)
        stage = self.staging_dir()
        try:
            path = stage / "layer.tar"
            reader = HashingReader(layer)
            with open(path, "wb") as f:
                shutil.copyfileobj(reader, f, CHUNK)
            empty = reader.count == 0 or reader.digest == EMPTY_TAR_DIGEST
            pcfg = parent.config if parent is not None else {}
            diff_ids = list(parent.diff_ids) if parent is not None else []
            files = [stage / "present"] * len(diff_ids)  # existing layers: never opened
            hashes: builtins.list[str | None] = list(diff_ids)
            if not empty:
                diff_ids.append(reader.digest)
                files.append(path)
                hashes.append(reader.digest)
            created = now_rfc3339()
            entry: dict[str, Any] = {"created": created}
            if author:
                entry["author"] = author
            entry["created_by"] = created_by
            if comment:
                entry["comment"] = comment
            if empty:
                entry["empty_layer"] = True
            config: dict[str, Any] = {"architecture": pcfg.get("architecture") or host_arch()}
            if pcfg.get("variant"):
                config["variant"] = pcfg["variant"]
            if author:
                config["author"] = author
            if comment:
                config["comment"] = comment
            config.update({
                "config": container_config, "container": container_id, "created": created,
                "history": [*(pcfg.get("history") or []), entry], "os": pcfg.get("os") or "linux",
                "rootfs": {"type": "layers", "diff_ids": diff_ids},
            })
            data = json.dumps(config, separators=(",", ":")).encode()
            with self.lock:
                missing = [c for c in (parent.chains if parent is not None else []) if c not in self.layers]
                if missing:
                    raise NotFound(f"layer {missing[0]} of image {parent_id} is missing")
                pending = PendingImage(data, config, files, hashes, [ref] if ref is not None else [])
                known = parent.id if parent is not None and parent.id in self.images else ""  # not a held one
                [(image, _)] = self.commit_images([pending], lambda msg: None, event="commit", parent=known)
            return image
        finally:
            shutil.rmtree(stage, ignore_errors=True)

    def restore_cached(self, parent_id: str | None, source_id: str, entries: int,
                       container_config: dict[str, Any]) -> Image:
        """The build cache's ``cachefrom`` hit on an image without a local parent chain (moby's
        ``restoreCachedImage``): a new image made of the first ``entries`` history entries of
        ``source_id`` and the layers they hold (all present already, nothing is unpacked), with
        ``container_config``; its parent is ``parent_id``."""
        with self.lock:
            source = self.images.get(source_id)
            if source is None:
                raise NoSuchImage(source_id)
            scfg = source.config
            history = list(scfg.get("history") or [])[:entries]
            layers = sum(1 for h in history if not h.get("empty_layer"))
            diff_ids = list((scfg.get("rootfs") or {}).get("diff_ids") or [])[:layers]
            config: dict[str, Any] = {"architecture": scfg.get("architecture") or host_arch()}
            if scfg.get("variant"):
                config["variant"] = scfg["variant"]
            config.update({"config": container_config, "created": (history[-1].get("created") if history else "")
                           or now_rfc3339(), "history": history, "os": scfg.get("os") or "linux",
                           "rootfs": {"type": "layers", "diff_ids": diff_ids}})
            data = json.dumps(config, separators=(",", ":")).encode()
            present = self.tmp_dir / "present"  # never opened: every layer exists (chain ids of the source's)
            pending = PendingImage(data, config, [present] * len(diff_ids), list(diff_ids), [])
            [(image, _)] = self.commit_images([pending], lambda msg: None, event="commit",
                                              parent=parent_id or "")
            return image

    # -- load, import, save (implemented in archive.py) ------------------------------------

    def staging_dir(self) -> Path:
        return Path(tempfile.mkdtemp(dir=self.tmp_dir, prefix="stage-"))

    def load(self, stream: BinaryIO, progress: Callable[[dict[str, Any]], None],
             quiet: bool = False) -> builtins.list[str]:
        from .archive import load_archive

        return load_archive(self, stream, progress, quiet)

    def import_rootfs(self, stream: BinaryIO, repo: str | None, tag: str | None, message: str,
                      changes: builtins.list[str], platform_: str | None = None) -> Image:
        from .archive import import_rootfs

        return import_rootfs(self, stream, repo, tag, message, changes, platform_)

    def save_targets(self, names: Iterable[str]) -> builtins.list[tuple[Image, builtins.list[R.Reference]]]:
        from .archive import save_targets

        return save_targets(self, list(names))

    def save(self, targets: builtins.list[tuple[Image, builtins.list[R.Reference]]], out: BinaryIO) -> None:
        from .archive import write_archive

        write_archive(self, targets, out)
        self.saved(targets)

    def save_archive(self, targets: builtins.list[tuple[Image, builtins.list[R.Reference]]]) -> Any:
        """The planned archive of ``targets`` (:class:`~dockyard.images.archive.SaveArchive`:
        its size, then ``write``; ``close`` it); :meth:`saved` once it is sent."""
        from .archive import plan_archive

        return plan_archive(self, targets)

    def saved(self, targets: builtins.list[tuple[Image, builtins.list[R.Reference]]]) -> None:
        for image, refs in targets:
            self.emit("save", image.id, name=refs[0].familiar if refs else image.id)

    def close(self) -> None:
        pass


def _progress(status: str, sid: str, current: int, total: int) -> dict[str, Any]:
    width = 50
    filled = int(width * current / total) if total else width
    bar = "[" + "=" * max(0, filled - 1) + (">" if filled < width else "=") + " " * (width - filled) + "]"
    return {"status": status, "progressDetail": {"current": current, "total": total},
            "progress": f"{bar} {_size(current)}/{_size(total)}", "id": sid}


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.4g}{unit}" if unit != "B" else f"{int(n)}B"
        n /= 1000
    return f"{n}GB"


def _off_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is not loop
    except RuntimeError:
        return True


def _until(filters: F.Filters) -> float | None:
    ns = F.until_ns(filters)
    return None if ns is None else ns / 1e9


def _path_match(pattern: str, text: str) -> bool:
    """Go's ``path.Match``: ``*`` and ``?`` never match ``/``."""
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            j = pattern.find("]", i + 1)
            if j == -1:
                return False
            body = pattern[i + 1:j]
            if body.startswith("^"):
                body = "!" + body[1:]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body).replace("\\", "\\\\") + "]")
            i = j
        elif ch == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(ch))
        i += 1
    return re.fullmatch("".join(out), text) is not None


def _ref_match(pattern: str, ref: R.Reference) -> bool:
    """Docker's ``FamiliarMatch``: the pattern against ``name:tag``, then against the name."""
    return _path_match(pattern, ref.familiar) or _path_match(pattern, ref.familiar_name)


def _empty_container_config() -> dict[str, Any]:
    return {"Hostname": "", "Domainname": "", "User": "", "AttachStdin": False, "AttachStdout": False,
            "AttachStderr": False, "Tty": False, "OpenStdin": False, "StdinOnce": False, "Env": None,
            "Cmd": None, "Image": "", "Volumes": None, "WorkingDir": "", "Entrypoint": None,
            "OnBuild": None, "Labels": None}
