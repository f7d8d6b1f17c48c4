"""``docker pull``: manifest (or list/index, then the platform's manifest), config, layers.

Layers whose chain is already stored are skipped ("Already exists"); the others download
concurrently into a staging directory, verified against their digest as they stream. Then
``ImageService.commit_images`` unpacks, checks every layer against the config's diff ids and
creates the image and its references, all or nothing. Nothing is left behind on failure:
the staging directory is removed and the commit rolls back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import platform as _platform
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..errors import Forbidden, InvalidArgument, NotFound, Unauthorized
from ..images import reference as R
from ..images.model import PendingImage, StagedLayer, host_arch
from ..images.service import ImageService, _progress
from .auth import Credentials
from .blobpipe import BlobPipe
from .client import (DOCKER_LAYER, DOCKER_LAYER_GZIP, LIST_TYPES, MANIFEST_TYPES, MAX_CONFIG, BadManifest,
                     RegistryClient, RegistryUnavailable, Settings, endpoints)
from .metadata import BlobSource, DistributionMetadata

log = logging.getLogger(__name__)
Progress = Callable[[dict[str, Any]], None]
LAYER_TYPES = (DOCKER_LAYER_GZIP, DOCKER_LAYER, "application/vnd.oci.image.layer.v1.tar",
               "application/vnd.oci.image.layer.v1.tar+gzip")
_ARCH_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm", "armel": "arm",
                 "i386": "386"}


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


def host_platform() -> Platform:
    arch = host_arch()
    variant = "v8" if arch == "arm64" else ("v7" if arch == "arm" and _platform.machine() == "armv7l" else "")
    return Platform("linux", arch, variant)


def parse_platform(text: str | None) -> Platform | None:
    """``os[/arch[/variant]]`` or ``arch`` (containerd's ``platforms.Parse``, roughly)."""
    if not text:
        return None
    parts = text.strip().lower().split("/")
    if len(parts) > 3 or not all(parts):
        raise InvalidArgument(f"\"{text}\": unknown operating system or architecture: invalid argument")
    if len(parts) == 1:
        if parts[0] in ("linux", "windows", "darwin"):
            return Platform(parts[0], host_arch())
        parts = ["linux", parts[0]]
    arch = _ARCH_ALIASES.get(parts[1], parts[1])
    variant = parts[2] if len(parts) == 3 else ""
    if arch == "arm64" and variant == "":
        variant = "v8"
    return Platform(parts[0], arch, variant)


def platform_matches(want: Platform, os_: str | None, arch: str | None, variant: str | None) -> bool:
    if (os_ or "linux") != want.os or _ARCH_ALIASES.get(arch or "", arch or "") != want.architecture:
        return False
    have = variant or ("v8" if want.architecture == "arm64" else "")
    return not want.variant or not have or have == want.variant


def pull_reference(from_image: str, tag: str | None) -> R.Reference:
    """``fromImage`` plus the ``tag`` query (a tag or a digest), as dockerd combines them."""
    ref = R.parse(from_image)
    if tag:
        if R.is_sha256_digest(tag) or ":" in tag:
            if not R.is_sha256_digest(tag):
                raise InvalidArgument(f"invalid reference format: digest {tag!r}")
            return R.Reference(ref.domain, ref.path, None, tag)
        return ref.with_tag(tag) if ref.digest is None else ref
    return ref.with_default_tag()


class Puller:
    def __init__(self, images: ImageService, settings: Settings, metadata: DistributionMetadata,
                 progress: Progress) -> None:
        self.images, self.settings, self.metadata, self.progress = images, settings, metadata, progress

    async def pull(self, ref: R.Reference, creds: Credentials, platform: Platform | None) -> str:
        """Pull ``ref``; the image id. Tries each endpoint (mirrors first) until one answers."""
        self.images.require_driver()
        last: Exception | None = None
        eps = endpoints(ref.domain, self.settings)
        for ep in eps:
            try:
                async with RegistryClient(ep, ref.path, creds if not ep.mirror else Credentials(),
                                          settings=self.settings) as client:
                    return await self._pull(client, ref, platform)
            except (Unauthorized, Forbidden) as exc:  # dockerd's wording; a 404 keeps the CLI from prompting
                if ep.mirror:
                    last = exc
                    continue
                raise NotFound(f"pull access denied for {ref.familiar_name}, repository does not exist or "
                               f"may require 'docker login': {exc}") from None
            except (RegistryUnavailable, NotFound) as exc:
                if not ep.mirror:
                    raise
                last = exc
        raise last or RegistryUnavailable("no registry endpoint")

    async def _pull(self, client: RegistryClient, ref: R.Reference, want: Platform | None) -> str:
        what = ref.familiar
        body, media, digest = await client.get_manifest(ref.digest or ref.tag or "latest", what)
        manifest = _json_object(body, what)
        # as moby: the repository path inside its registry ("library/busybox", "base/busybox")
        self.progress({"status": f"Pulling from {ref.path}", "id": ref.tag or ref.digest})
        if media in LIST_TYPES:
            target = want or host_platform()
            chosen = None
            for m in manifest.get("manifests") or []:
                p = m.get("platform") or {}
                if m.get("mediaType", MANIFEST_TYPES[0]) in MANIFEST_TYPES and platform_matches(
                        target, p.get("os"), p.get("architecture"), p.get("variant")):
                    chosen = m
                    break
            if chosen is None:
                raise NotFound(f"no matching manifest for {target} in the manifest list entries")
            inner, media, _ = await client.get_manifest(_digest_of(chosen), what)
            manifest = _json_object(inner, what)
        if media not in MANIFEST_TYPES:
            raise BadManifest(f"unsupported manifest media type {media!r} for {what}")
        config_desc = manifest.get("config") or {}
        layers = manifest.get("layers")
        if not isinstance(layers, list) or not isinstance(config_desc, dict):
            raise BadManifest(f"invalid manifest for {what}: no config or layers")
        for layer in layers:
            if not isinstance(layer, dict) or layer.get("mediaType") not in LAYER_TYPES:
                kind = layer.get("mediaType") if isinstance(layer, dict) else layer
                raise BadManifest(f"unsupported layer media type {kind!r} in the manifest for {what}")
        config_digest = _digest_of(config_desc)
        config_bytes = await client.get_small_blob(config_digest, MAX_CONFIG, "image config")
        config = _json_object(config_bytes, f"the image config of {what}")
        if want is not None and not platform_matches(want, config.get("os"), config.get("architecture"),
                                                     config.get("variant")):
            actual = Platform(config.get("os") or "", config.get("architecture") or "", config.get("variant") or "")
            raise NotFound(f"image with reference {what} was found but does not match the specified "
                           f"platform: wanted {want}, actual: {actual}")
        diff_ids = list((config.get("rootfs") or {}).get("diff_ids") or [])
        if len(diff_ids) != len(layers):
            raise BadManifest(f"invalid manifest for {what}: {len(layers)} layers but the config has "
                              f"{len(diff_ids)} diff ids")
        chains = R.chain_ids(diff_ids)
        image_id = config_digest
        tag_ref = ref if ref.tag and not ref.digest else None
        digest_ref = R.Reference(ref.domain, ref.path, None, digest)
        up_to_date = (image_id in self.images.images and tag_ref is not None
                      and self.images.refs.get(str(tag_ref)) == image_id)

        stage = self.images.staging_dir()
        staged: dict[int, StagedLayer] = {}
        try:
            files: list[Path] = []
            hashes: list[str | None] = []
            todo = []
            streaming = self.images.can_stage()
            for i, (desc, chain, diff) in enumerate(zip(layers, chains, diff_ids)):
                sid = _digest_of(desc)[7:19]
                if chain in self.images.layers:
                    self.progress({"status": "Already exists", "progressDetail": {}, "id": sid})
                    files.append(stage / "present")  # never opened: the layer is stored
                    hashes.append(diff)
                else:
                    self.progress({"status": "Pulling fs layer", "progressDetail": {}, "id": sid})
                    path = stage / f"layer-{i}"
                    files.append(path)
                    hashes.append(diff if streaming else _digest_of(desc))
                    todo.append((i, desc, path, sid, diff))
            if streaming:
                await self._stream_all(client, todo, staged)
            else:
                await self._download_all(client, [(desc, path, sid) for _, desc, path, sid, _ in todo])
            pending = PendingImage(config_bytes, config, files, hashes,
                                   [r for r in (tag_ref, digest_ref) if r is not None], staged)
            sids = {d: _digest_of(desc)[7:19] for desc, d in zip(layers, diff_ids)}
            await asyncio.to_thread(self.images.commit_images, [pending], self._extracting(sids), "pull")
        finally:
            def cleanup() -> None:
                for s in staged.values():
                    try:
                        self.images.discard_staged(s)
                    except Exception:
                        log.exception("pull: discarding a staged layer failed")
                shutil.rmtree(stage, True)

            await asyncio.to_thread(cleanup)
        domain = ref.domain
        for desc, diff in zip(layers, diff_ids):
            self.metadata.add(diff, BlobSource(_digest_of(desc), desc["mediaType"], int(desc.get("size") or 0),
                                               domain, ref.path))
        self.progress({"status": f"Digest: {digest}"})
        shown = tag_ref.familiar if tag_ref is not None else digest_ref.familiar
        if up_to_date:
            self.progress({"status": f"Status: Image is up to date for {shown}"})
        else:
            self.progress({"status": f"Status: Downloaded newer image for {shown}"})
        return image_id

    def _downloading(self, sid: str, size: int | None) -> Callable[[int], None]:
        """Docker's per-layer "Downloading" progress, at most every 0.1 s."""
        last = [0.0]

        def on_progress(n: int) -> None:
            t = time.monotonic()
            if t - last[0] >= 0.1:
                last[0] = t
                self.progress(_progress("Downloading", sid, n, size or n))
        return on_progress

    async def _download_all(self, client: RegistryClient, todo: list[tuple[dict[str, Any], Path, str]]) -> None:
        sem = asyncio.Semaphore(max(1, self.settings.max_concurrent_downloads))

        async def one(desc: dict[str, Any], path: Path, sid: str) -> None:
            if sem.locked():
                self.progress({"status": "Waiting", "progressDetail": {}, "id": sid})
            async with sem:
                size = int(desc["size"]) if isinstance(desc.get("size"), int) else None
                on_progress = self._downloading(sid, size)

                await client.download_blob(_digest_of(desc), size, path, on_progress)
                self.progress({"status": "Verifying Checksum", "progressDetail": {}, "id": sid})
                self.progress({"status": "Download complete", "progressDetail": {}, "id": sid})

        tasks = [asyncio.ensure_future(one(*item)) for item in todo]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    async def _stream_all(self, client: RegistryClient, todo: list[tuple[int, dict[str, Any], Path, str, str]],
                          staged: dict[int, StagedLayer]) -> None:
        """Download the layers concurrently, each unpacked by a worker thread as it streams in
        (decompress, hash, extract in one pass, no temp file). A layer is staged only once
        both its blob digest (checked at the end of the download, before the unpacking thread
        sees the end of the stream) and its diff id match; the commit comes after all of them."""
        sem = asyncio.Semaphore(max(1, self.settings.max_concurrent_downloads))
        loop = asyncio.get_running_loop()

        async def one(i: int, desc: dict[str, Any], sid: str, diff: str) -> None:
            if sem.locked():
                self.progress({"status": "Waiting", "progressDetail": {}, "id": sid})
            async with sem:
                size = int(desc["size"]) if isinstance(desc.get("size"), int) else None
                on_progress = self._downloading(sid, size)

                pipe = BlobPipe(loop)

                def unpack() -> StagedLayer:
                    try:
                        return self.images.stage_layer(pipe, diff)
                    finally:
                        pipe.close()

                unpacking = asyncio.ensure_future(asyncio.to_thread(unpack))
                download = asyncio.ensure_future(client.stream_blob(_digest_of(desc), size, pipe.feed, on_progress))
                try:
                    await asyncio.wait({unpacking, download}, return_when=asyncio.FIRST_COMPLETED)
                    if unpacking.done() and unpacking.exception() is not None:
                        download.cancel()  # a bad tar: its error is the one to report
                        await asyncio.gather(download, return_exceptions=True)
                        unpacking.result()
                    await download  # raises a download or digest error (the except fails the pipe)
                    self.progress({"status": "Verifying Checksum", "progressDetail": {}, "id": sid})
                    self.progress({"status": "Download complete", "progressDetail": {}, "id": sid})
                    pipe.finish()
                    staged[i] = await asyncio.shield(unpacking)
                except BaseException as exc:
                    pipe.fail(exc)
                    download.cancel()
                    await asyncio.gather(download, return_exceptions=True)
                    # the thread stops at its next read; what it staged is discarded
                    done = await asyncio.gather(asyncio.shield(unpacking), return_exceptions=True)
                    if isinstance(done[0], StagedLayer):
                        staged[i] = done[0]  # the caller's cleanup discards it
                    raise

        tasks = [asyncio.ensure_future(one(i, desc, sid, diff)) for i, desc, _, sid, diff in todo]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    def _extracting(self, sids: dict[str, str]) -> Progress:
        """The commit's "Loading layer" progress, worded as a pull's "Extracting" and "Pull complete"."""
        by_short = {d[7:19]: s for d, s in sids.items()}

        def progress(msg: dict[str, Any]) -> None:
            if msg.get("status") != "Loading layer":
                return
            sid = by_short.get(msg.get("id", ""), msg.get("id"))
            self.progress({**msg, "status": "Extracting", "id": sid})
            detail = msg.get("progressDetail") or {}
            if detail.get("current") == detail.get("total"):
                self.progress({"status": "Pull complete", "progressDetail": {}, "id": sid})

        return progress


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError:
        raise BadManifest(f"{what}: not valid JSON") from None
    if not isinstance(value, dict):
        raise BadManifest(f"{what}: not a JSON object")
    return value


def _digest_of(desc: Any) -> str:
    digest = desc.get("digest") if isinstance(desc, dict) else None
    if not isinstance(digest, str) or not R.is_sha256_digest(digest):
        raise BadManifest(f"invalid or unsupported digest {digest!r} in a manifest descriptor")
    return digest
