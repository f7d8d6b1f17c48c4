"""Registry routes: ``POST /auth`` here; pull (``POST /images/create?fromImage=``) and push
(``POST /images/{name}/push``) live in the images route table and call :func:`pull` and
:func:`push`.

Progress is Docker's JSON stream. The response starts with the first message, so an error
before it (a bad reference, a missing manifest, bad credentials) is a plain HTTP error, and
one after it is an ``errorDetail`` line, as dockerd does.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Awaitable, Callable

from aiohttp import web

from ..errors import DockyardError, InvalidArgument, Unavailable
from ..registry import Credentials, RegistryService, decode_registry_auth
from .middleware import add_common_headers
from .util import daemon_of, json_body, json_response

log = logging.getLogger("dockyard.api.registry")

routes = web.RouteTableDef()


def registry_of(request: web.Request) -> RegistryService:
    daemon = daemon_of(request)
    svc = getattr(daemon, "registry", None)
    if svc is None:
        images = getattr(daemon, "images", None)
        if images is None:
            raise Unavailable("the image service is not running")
        svc = daemon.registry = RegistryService(images, daemon.config)  # type: ignore[attr-defined]
    return svc


def credentials(request: web.Request) -> Credentials:
    return decode_registry_auth(request.headers.get("X-Registry-Auth"))


async def stream_progress(request: web.Request,
                          run: Callable[[Callable[[dict[str, Any]], None]], Awaitable[Any]]) -> web.StreamResponse:
    """Run ``run(progress)`` and stream what it reports; ``progress`` may be called from any thread."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    add_common_headers(response)

    def progress(msg: dict[str, Any]) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, msg)

    async def write(msg: dict[str, Any]) -> None:
        if not response.prepared:
            await response.prepare(request)
        await response.write(json.dumps(msg).encode() + b"\r\n")

    task = asyncio.ensure_future(run(progress))
    try:
        while True:
            getter = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
            if getter in done:
                await write(getter.result())
                continue
            getter.cancel()
            break
        await asyncio.sleep(0)  # messages sent from a worker thread just before it finished
        while not queue.empty():
            await write(queue.get_nowait())
        task.result()
    except Exception as exc:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if not response.prepared:
            raise
        if not isinstance(exc, DockyardError):
            log.exception("registry operation failed")
        await write({"errorDetail": {"message": str(exc)}, "error": str(exc)})
    if not response.prepared:
        await response.prepare(request)
    await response.write_eof()
    return response


async def pull(request: web.Request) -> web.StreamResponse:
    q = request.query
    svc = registry_of(request)
    creds = credentials(request)
    return await stream_progress(request, lambda progress: svc.pull(
        q["fromImage"], q.get("tag") or None, q.get("platform") or None, creds, progress))


async def push(request: web.Request) -> web.StreamResponse:
    svc = registry_of(request)
    creds = credentials(request)
    name, tag = request.match_info["name"], request.query.get("tag") or None
    return await stream_progress(request, lambda progress: svc.push(name, tag, creds, progress))


@routes.post("/auth")
async def auth(request: web.Request) -> web.Response:
    body = await json_body(request)
    if not isinstance(body, dict):
        raise InvalidArgument("invalid JSON: expected an object")
    creds = Credentials.from_json(body)
    return json_response(await registry_of(request).login(creds, str(body.get("serveraddress") or "")))
