"""``docker push``: layers, config, then a Docker schema 2 manifest per tag.

For each layer, in order of cost: a blob the registry already has (``HEAD`` on the digests
this layer was pulled from or pushed as), a cross-repository mount from another repository
of the same registry, the layer's kept original blob, or else the layer exported by the
storage driver (checked against its diff id) and gzipped deterministically, so that pushing
the same layer twice gives the same blob. That export is streamed: exported, gzipped, hashed
and uploaded in one pass (no temp file); the upload is completed only after the diff id matched.
The config is pushed byte for byte: the image id
(the config's digest) survives a push and a pull.
"""

from __future__ import annotations

import asyncio
import io
import json
import threading
import time
from typing import Any, Callable

from isal import isal_zlib

from ..errors import NotFound
from ..images import reference as R
from ..images.model import Image
from ..images.service import ImageService, _progress
from ..images.store import CHUNK, DigestMismatch, split_digest
from ..images.streams import HashingReader, IterReader
from .auth import Credentials
from .client import (DOCKER_CONFIG, DOCKER_LAYER, DOCKER_LAYER_GZIP, DOCKER_MANIFEST, RegistryClient, Settings,
                     endpoints)
from .metadata import BlobSource, DistributionMetadata

Progress = Callable[[dict[str, Any]], None]
# ISA-L's deflate (python-isal) at its level 1: about 10x faster than zlib's level 1 for the
# same size on layer tars. Fixed level and library, no mtime: the same layer gives the same blob.
GZIP_LEVEL = 1


def docker_layer_type(media_type: str | None) -> str:
    return DOCKER_LAYER if media_type in (DOCKER_LAYER, "application/vnd.oci.image.layer.v1.tar") else DOCKER_LAYER_GZIP


class Pusher:
    def __init__(self, images: ImageService, settings: Settings, metadata: DistributionMetadata,
                 progress: Progress) -> None:
        self.images, self.settings, self.metadata, self.progress = images, settings, metadata, progress

    def targets(self, name: str, tag: str | None) -> tuple[R.Reference, list[tuple[R.Reference, Image]]]:
        """The tags to push: ``name:tag``, or every tag of the repository when none is given."""
        ref = R.parse(name)
        if ref.digest:
            raise NotFound(f"cannot push a digest reference: {ref.familiar}")
        if tag:
            ref = ref.with_tag(tag)
        wanted = [ref] if ref.tag else [R.parse(k) for k in sorted(self.images.refs)
                                        if R.parse(k).name == ref.name and R.parse(k).tag and not R.parse(k).digest]
        out = []
        for r in wanted:
            image_id = self.images.refs.get(str(r))
            if image_id is not None and image_id in self.images.images:
                out.append((r, self.images.images[image_id]))
        if not out:
            raise NotFound(f"An image does not exist locally with the tag: {ref.familiar_name}")
        return ref.repo_only(), out

    async def push(self, name: str, tag: str | None, creds: Credentials) -> None:
        self.images.require_driver()
        repo, targets = self.targets(name, tag)
        ep = endpoints(repo.domain, self.settings, push=True)[0]
        diffs = {d for _, image in targets for d in image.diff_ids}
        mount_from = sorted({s.repository for d in diffs for s in self.metadata.sources(d)
                             if s.registry == repo.domain and s.repository != repo.path})
        self.progress({"status": f"The push refers to repository [{repo.name}]"})
        async with RegistryClient(ep, repo.path, creds, ("pull", "push"), self.settings,
                                  tuple(f"repository:{r}:pull" for r in mount_from[:8])) as client:
            for ref, image in targets:
                await self._push_image(client, ref, image)

    async def _push_image(self, client: RegistryClient, ref: R.Reference, image: Image) -> None:
        layers = []
        for chain in image.chains:
            layer = self.images.layers.get(chain)
            if layer is None:
                raise NotFound(f"layer {chain} of image {image.id} is missing")
            layers.append(layer)
        for layer in layers:
            self.progress({"status": "Preparing", "progressDetail": {}, "id": layer.diff_id[7:19]})
        sem = asyncio.Semaphore(max(1, self.settings.max_concurrent_uploads))

        async def one(layer: Any) -> dict[str, Any]:
            if sem.locked():
                self.progress({"status": "Waiting", "progressDetail": {}, "id": layer.diff_id[7:19]})
            async with sem:
                return await self._push_layer(client, ref, layer)

        tasks = [asyncio.ensure_future(one(layer)) for layer in layers]
        try:
            descs = await asyncio.gather(*tasks)
        except BaseException:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        config = self.images.blobs.read(image.id)
        if await client.blob_size(image.id) is None:
            location, _ = await client.start_upload()
            assert location is not None
            await client.upload_bytes(location, config, image.id)
        manifest = {"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
                    "config": {"mediaType": DOCKER_CONFIG, "size": len(config), "digest": image.id},
                    "layers": descs}
        body = json.dumps(manifest, indent=3).encode()
        digest = await client.put_manifest(ref.tag or "latest", body, DOCKER_MANIFEST)
        await asyncio.to_thread(self.images.add_reference, R.Reference(ref.domain, ref.path, None, digest), image.id)
        self.images.emit("push", ref.familiar, name=ref.familiar)  # dockerd: the reference is the actor
        self.progress({"status": f"{ref.tag}: digest: {digest} size: {len(body)}"})
        self.progress({"progressDetail": {}, "aux": {"Tag": ref.tag, "Digest": digest, "Size": len(body)}})

    async def _push_layer(self, client: RegistryClient, ref: R.Reference, layer: Any) -> dict[str, Any]:
        sid = layer.diff_id[7:19]
        sources = [s for s in self.metadata.sources(layer.diff_id) if s.registry == ref.domain]
        seen: set[str] = set()
        for s in sources:  # the registry may have it already, in this repository
            if s.digest in seen:
                continue
            seen.add(s.digest)
            size = await client.blob_size(s.digest)
            if size is not None:
                self.progress({"status": "Layer already exists", "progressDetail": {}, "id": sid})
                return self._done(layer.diff_id, s.digest, s.media_type, size, ref)
        location = None
        for s in sources:  # or in another repository of the same registry
            if s.repository == ref.path:
                continue
            location, mounted = await client.start_upload(mount=(s.digest, s.repository))
            if mounted:
                self.progress({"status": f"Mounted from {s.repository}", "progressDetail": {}, "id": sid})
                return self._done(layer.diff_id, s.digest, s.media_type, s.size, ref)
            break  # the registry said no mount; upload into the session it opened
        if location is None:
            location, _ = await client.start_upload()
        assert location is not None
        if not (layer.blob and self.images.blobs.has(layer.blob)):
            digest, size = await self._stream_layer(client, location, layer, sid)
            self.progress({"status": "Pushed", "progressDetail": {}, "id": sid})
            return self._done(layer.diff_id, digest, DOCKER_LAYER_GZIP, size, ref)
        # the kept original blob: pushed as it is
        path, digest = self.images.blobs.path(layer.blob), layer.blob
        size, media = path.stat().st_size, docker_layer_type(layer.blob_media_type)
        last = [0.0]

        def on_progress(n: int) -> None:
            t = time.monotonic()
            if t - last[0] >= 0.1 or n == size:
                last[0] = t
                self.progress(_progress("Pushing", sid, n, size))

        on_progress(0)
        await client.upload_file(location, path, digest, size, on_progress)
        self.progress({"status": "Pushed", "progressDetail": {}, "id": sid})
        return self._done(layer.diff_id, digest, media, size, ref)

    async def _stream_layer(self, client: RegistryClient, location: Any, layer: Any, sid: str) -> tuple[str, int]:
        """Export, gzip, hash and upload the layer in one pass, no temp file: a worker thread
        exports and compresses (zlib and the reads release the GIL) into a small queue that the
        upload drains. The upload is completed (``PUT ?digest=``) only once the export matched
        the layer's diff id. Returns (digest, size) of the gzipped blob."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=8)
        read = [0]  # uncompressed bytes exported so far, for the progress
        total = int(layer.tar_size or 0)

        stop = threading.Event()  # the upload failed: the export stops at its next piece

        def produce() -> None:
            try:
                for out in self._gzip_export(layer, read):
                    if stop.is_set():
                        return
                    asyncio.run_coroutine_threadsafe(queue.put(out), loop).result()
            finally:
                if not stop.is_set():
                    asyncio.run_coroutine_threadsafe(queue.put(None), loop).result()

        async def chunks():
            while (item := await queue.get()) is not None:
                yield item

        last = [0.0]

        def on_progress(_: int) -> None:
            t = time.monotonic()
            if t - last[0] >= 0.1:
                last[0] = t
                self.progress(_progress("Pushing", sid, read[0], max(total, read[0])))

        producer = asyncio.ensure_future(asyncio.to_thread(produce))
        try:
            location, digest, size = await client.upload_stream(location, chunks(), on_progress)
            await producer  # raises DigestMismatch if the export was not the layer
        except BaseException:
            stop.set()
            while not producer.done():  # unblock its pending put; it returns at the next piece
                while not queue.empty():
                    queue.get_nowait()
                await asyncio.sleep(0.01)
            await client.cancel_upload(location)
            raise
        self.progress(_progress("Pushing", sid, read[0], max(total, read[0])))
        await client.finish_upload(location, digest)
        return digest, size

    def _gzip_export(self, layer: Any, read: list[int]):
        """The layer as the driver exports it, gzipped (level 1, mtime 0: deterministic), in
        pieces of about a MiB; raises DigestMismatch at the end if it was not the diff id."""
        driver = self.images.require_driver()
        reader = HashingReader(IterReader(driver.export_layer(split_digest(layer.chain_id))))
        buffered = io.BufferedReader(reader, CHUNK)
        comp = isal_zlib.compressobj(GZIP_LEVEL, isal_zlib.DEFLATED, 31)  # gzip framing, mtime 0
        while chunk := buffered.read(CHUNK):
            read[0] = reader.count
            out = comp.compress(chunk)
            if out:
                yield out
        yield comp.flush()
        if reader.digest != layer.diff_id:
            raise DigestMismatch(f"the storage driver cannot reproduce layer {layer.diff_id} "
                                 f"(its export is {reader.digest})")

    def _done(self, diff_id: str, digest: str, media: str, size: int, ref: R.Reference) -> dict[str, Any]:
        self.metadata.add(diff_id, BlobSource(digest, media, size, ref.domain, ref.path))
        return {"mediaType": media, "size": size, "digest": digest}
