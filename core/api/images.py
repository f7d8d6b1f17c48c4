"""Image routes: list, inspect, history, tag, remove, prune, load, save, import, ``/system/df``.

Slow work (unpacking, exporting, removing layers) runs in a worker thread; bodies and
archives stream in both directions in 1 MiB chunks, never whole in memory.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..http import web

from .. import filters as F
from ..errors import DockyardError, InvalidArgument, NotSupported, Unavailable
from ..images.service import IMAGE_LIST_FILTERS, PRUNE_FILTERS, ImageService
from ..images.streams import BodyReader, ResponseWriter, SocketWriter, transport_drained
from ..plugins import await_me_maybe
from .middleware import add_common_headers
from .util import daemon_of, drain_body, json_line, json_response, query_bool, stream_progress

log = logging.getLogger("dockyard.api.images")

routes = web.RouteTableDef()


def images_of(request: web.Request) -> ImageService:
    svc = daemon_of(request).images
    if svc is None:
        raise Unavailable("the image service is not running")
    return svc


@routes.get("/images/json")
async def list_images(request: web.Request) -> web.Response:
    svc = images_of(request)
    filters = F.parse(request.query.get("filters"), IMAGE_LIST_FILTERS)
    if request.query.get("filter"):  # API < 1.41: ?filter=<reference>
        filters.setdefault("reference", []).append(request.query["filter"])
    return json_response(svc.list(filters, query_bool(request, "all"), query_bool(request, "shared-size")))


@routes.post("/images/load")
async def load(request: web.Request) -> web.StreamResponse:
    svc = images_of(request)
    try:
        svc.require_driver()
    except DockyardError:
        await drain_body(request)
        raise
    quiet = query_bool(request, "quiet")
    loop = asyncio.get_running_loop()
    try:
        return await stream_progress(
            request, lambda progress: asyncio.to_thread(svc.load, BodyReader(request.content, loop), progress, quiet),
            what="image load", finish=lambda lines: [{"stream": line} for line in lines])
    except DockyardError as exc:
        from ..images.archive import BadArchive  # the archive code comes with the first load (issue 18)

        if not isinstance(exc, BadArchive):
            raise
        # dockerd answers a load that fails with 200 and the error in the stream (docker-py's
        # ImageLoadError), in Go's archive/tar words
        message = _go_tar_wording(str(exc))
        return web.Response(status=200, content_type="application/json",
                            body=json_line({"errorDetail": {"message": message}, "error": message}))


def _go_tar_wording(message: str) -> str:
    text = message.lower()
    if "truncated" in text or "unexpected end of data" in text or "eoferror" in text:
        return "unexpected EOF"
    if "empty or not a tar" in text or "invalid header" in text or "bad checksum" in text:
        return "archive/tar: invalid tar header"
    return message


@routes.get("/images/get")
async def save_many(request: web.Request) -> web.StreamResponse:
    return await _save(request, list(request.query.getall("names", [])))


async def _save(request: web.Request, names: list[str]) -> web.StreamResponse:
    svc = images_of(request)
    svc.require_driver()
    if not names:
        raise InvalidArgument("no image names given")
    targets = svc.save_targets(names)
    # planned first: errors are still plain HTTP errors, and the size is the Content-Length
    # (a client sees a cut archive as one; no chunk framing)
    planning = asyncio.ensure_future(asyncio.to_thread(svc.save_archive, targets))
    try:
        archive = await asyncio.shield(planning)
    except asyncio.CancelledError:  # the client hung up (its handler is cancelled): close what was planned
        planning.add_done_callback(lambda t: t.cancelled() or t.exception() is not None or t.result().close())
        raise
    writing = None
    try:
        response = web.StreamResponse(headers={"Content-Type": "application/x-tar"})
        response.content_length = archive.size
        add_common_headers(response)
        await response.prepare(request)
        await response.write(archive.take_head())  # the headers go out with it
        transport = request.transport
        direct = SocketWriter.usable(transport)
        if direct:  # the rest straight from the worker to the socket (sendfile for blob files)
            await transport_drained(transport)
            direct = SocketWriter.usable(transport)
        if direct:
            writer: Any = SocketWriter.for_transport(transport)
        else:
            writer = ResponseWriter(response, asyncio.get_running_loop())

        def run() -> None:
            # the archive's files and the socket's dup are closed here, never under the
            # feet of a write still running (the handler may be cancelled meanwhile)
            try:
                archive.write(writer)
                writer.send()
            finally:
                archive.close()
                if direct:
                    writer.close()

        writing = asyncio.ensure_future(asyncio.to_thread(run))
        writing.add_done_callback(lambda f: f.cancelled() or f.exception())  # read, also if we were cancelled
        try:
            await asyncio.shield(writing)
        except asyncio.CancelledError:
            if direct:
                writer.cancel()
            raise
        except Exception as exc:
            if isinstance(exc, ConnectionError):
                log.info("image save: the client went away (%s)", exc)
            else:
                log.exception("image save failed; aborting the archive")
            if request.transport is not None:
                request.transport.close()  # a truncated archive, never a silently short one
            return response
        svc.saved(targets)
        await response.write_eof()
        return response
    finally:
        if writing is None:
            archive.close()


@routes.post("/images/create")
async def create(request: web.Request) -> web.StreamResponse:
    svc = images_of(request)
    q = request.query
    if q.get("fromImage"):
        await drain_body(request)
        from .registry import pull

        return await pull(request)
    src = q.get("fromSrc")
    if not src:
        await drain_body(request)
        raise InvalidArgument("fromImage or fromSrc is required")
    if src != "-":
        await drain_body(request)
        raise NotSupported("importing from a URL is not supported: send the archive as the request body (fromSrc=-)")
    try:
        svc.require_driver()
    except DockyardError:
        await drain_body(request)
        raise
    loop = asyncio.get_running_loop()
    changes = [c for v in q.getall("changes", []) for c in v.splitlines()]
    try:
        image = await asyncio.to_thread(
            svc.import_rootfs, BodyReader(request.content, loop), q.get("repo") or None,
            q.get("tag") or None, q.get("message", ""), changes, q.get("platform") or None)
    except Exception:
        await drain_body(request)
        raise
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    add_common_headers(response)
    await response.prepare(request)
    await response.write(json_line({"status": image.id}))
    await response.write_eof()
    return response


@routes.post("/images/prune")
async def prune(request: web.Request) -> web.Response:
    svc = images_of(request)
    filters = F.parse(request.query.get("filters"), PRUNE_FILTERS)
    return json_response(await asyncio.to_thread(svc.prune, filters))


@routes.get("/images/search")
async def search(request: web.Request) -> web.Response:
    raise NotSupported("searching registries is not supported yet")


@routes.get("/images/{name:.+}/json")
async def inspect(request: web.Request) -> web.Response:
    return json_response(images_of(request).inspect(request.match_info["name"]))


@routes.get("/images/{name:.+}/history")
async def history(request: web.Request) -> web.Response:
    return json_response(images_of(request).history(request.match_info["name"]))


@routes.post("/images/{name:.+}/tag")
async def tag(request: web.Request) -> web.Response:
    svc = images_of(request)
    await asyncio.to_thread(svc.tag, request.match_info["name"], request.query.get("repo", ""),
                            request.query.get("tag") or None)
    return web.Response(status=201)


@routes.post("/images/{name:.+}/push")
async def push(request: web.Request) -> web.StreamResponse:
    from .registry import push as push_image

    return await push_image(request)


@routes.get("/images/{name:.+}/get")
async def save_one(request: web.Request) -> web.StreamResponse:
    return await _save(request, [request.match_info["name"]])


@routes.delete("/images/{name:.+}")
async def delete(request: web.Request) -> web.Response:
    svc = images_of(request)
    records = await asyncio.to_thread(svc.delete, request.match_info["name"], query_bool(request, "force"),
                                      not query_bool(request, "noprune"))
    return json_response(records)


@routes.get("/system/df")
async def system_df(request: web.Request) -> web.Response:
    """Every service with a ``df()`` adds its part (images: LayersSize and Images)."""
    out: dict[str, Any] = {"LayersSize": 0, "Images": [], "Containers": [], "Volumes": [], "BuildCache": []}
    for service in daemon_of(request).services:
        part = getattr(service, "df", None)
        if part is not None:
            out.update(await await_me_maybe(part()))
    return json_response(out)
