"""Container filesystem routes: ``HEAD/GET/PUT /containers/{id}/archive`` (``docker cp``),
``GET /containers/{id}/export`` and ``POST /commit``.

``docker cp`` sees the container with its mounts in place (:mod:`dockyard.containers.fsview`);
export and commit see its own layer only, as in Docker.

The work is in :mod:`dockyard.containers.archive`; tars stream in both directions from a
worker thread, never whole in memory.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable

from ..http import web

from ..containers import effective
from ..errors import InvalidArgument
from .containers import service
from .middleware import add_common_headers
from .util import drain_body, json_response, query_bool

# imported by the handlers, not at idle: the tar code (containers.archive), the mount view (fsview), its
# worker threads (fsworkers), the request-body streams, models (msgspec and the generated schema, ~1 MB)

log = logging.getLogger("dockyard.api.archive")

routes = web.RouteTableDef()


def _path(request: web.Request) -> str:
    path = request.query.get("path", "")
    if not path:
        raise InvalidArgument("bad parameter: path cannot be empty")
    if "\x00" in path:  # no file name holds one: a 400, not an error from deep in the walk
        raise InvalidArgument("bad parameter: path contains a NUL byte")
    return path


async def _stream_tar(request: web.Request, headers: dict[str, str], chunks: Callable[[], Any]) -> web.StreamResponse:
    """Send the tar ``chunks()`` yields (called in a filesystem worker thread, the caller
    holding the container's slot); a failure mid-way cuts the connection, so the client sees
    a truncated archive, never a silently short one."""
    from ..containers.fsworkers import WORKERS
    from ..images.streams import ResponseWriter

    response = web.StreamResponse(headers={"Content-Type": "application/x-tar", **headers})
    add_common_headers(response)
    await response.prepare(request)
    writer = ResponseWriter(response, asyncio.get_running_loop())

    def run() -> None:
        for chunk in chunks():
            writer.write(chunk)
        writer.send()

    try:
        await WORKERS.run(run)
    except ConnectionResetError:
        log.info("client went away during an archive stream")
        return response
    except Exception:
        log.exception("archive stream failed; aborting it")
        if request.transport is not None:
            request.transport.close()
        return response
    try:
        await response.write_eof()
    except ConnectionResetError:
        pass  # clients stop reading at the tar's end blocks, before the chunked terminator
    return response


@routes.head("/containers/{id}/archive")
async def stat_path(request: web.Request) -> web.Response:
    from ..containers import archive as A, fsview
    from ..containers.fsworkers import WORKERS

    svc = service(request)
    c = svc.get(request.match_info["id"])
    await effective.authorize_use(svc, c, "archive")  # the host paths its mounts bind
    path = _path(request)
    async with WORKERS.slot(c.id), fsview.opened(svc, c) as view:
        info = (await WORKERS.run(A.stat_path, view.root, c.id, path))[0]
    return web.Response(status=200, headers={A.STAT_HEADER: A.encode_stat(info)})


@routes.get("/containers/{id}/archive", allow_head=False)
async def get_archive(request: web.Request) -> web.StreamResponse:
    from ..containers import archive as A, fsview
    from ..containers.fsworkers import WORKERS

    svc = service(request)
    c = svc.get(request.match_info["id"])
    await effective.authorize_use(svc, c, "archive")  # the host paths its mounts bind
    path = _path(request)
    async with WORKERS.slot(c.id), fsview.opened(svc, c) as view:
        archive = await WORKERS.run(A.Archive, view.root, c.id, path)
        try:
            svc.emit("archive-path", c)
            return await _stream_tar(request, {A.STAT_HEADER: A.encode_stat(archive.stat)}, archive.chunks)
        finally:
            archive.close()


@routes.put("/containers/{id}/archive")
async def put_archive(request: web.Request) -> web.Response:
    from ..containers import archive as A, fsview
    from ..containers.fsworkers import WORKERS
    from ..images.streams import BodyReader

    svc = service(request)
    try:
        c = svc.get(request.match_info["id"])
        await effective.authorize_use(svc, c, "archive")  # the host paths its mounts bind
        path = _path(request)
        loop = asyncio.get_running_loop()
        async with WORKERS.slot(c.id), fsview.opened(svc, c) as view:
            await WORKERS.run(
                A.extract_to_dir, view.root, c, path, BodyReader(request.content, loop),
                no_overwrite_dir_non_dir=query_bool(request, "noOverwriteDirNonDir"),
                copy_uid_gid=query_bool(request, "copyUIDGID"), rootfs=view.user_root, spool_dir=svc.dir(c))
    except Exception:
        await drain_body(request)
        raise
    svc.emit("extract-to-dir", c)
    return web.Response(status=200)


@routes.get("/containers/{id}/export")
async def export(request: web.Request) -> web.StreamResponse:
    from ..containers import archive as A, inroot as R
    from ..containers.fsworkers import WORKERS

    svc = service(request)
    c = svc.get(request.match_info["id"])
    async with WORKERS.slot(c.id), svc.mounted(c) as rootfs:
        root = await WORKERS.run(R.Root, rootfs)
        try:
            svc.emit("export", c)
            return await _stream_tar(request, {}, lambda: A.export_chunks(root))
        finally:
            root.close()


@routes.post("/commit")
async def commit(request: web.Request) -> web.Response:
    from ..containers import archive as A
    from . import models

    svc = service(request)
    q = request.query
    raw = (await request.read()).strip()
    req = await models.parse(request, models.CommitRequest, required=False)
    # no body (or ``null``): the container's own config; the service takes dicts
    body = models.plain(req) if raw and raw != b"null" else None
    changes = [line for v in q.getall("changes", []) for line in v.splitlines()]
    image_id = await A.commit(
        svc, q.get("container", ""), repo=q.get("repo") or None, tag=q.get("tag") or None,
        comment=q.get("comment", ""), author=q.get("author", ""), pause=query_bool(request, "pause", True),
        changes=changes, config=body)
    return json_response({"Id": image_id}, status=201)

