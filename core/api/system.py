"""System routes: ``/_ping``, ``/version``, ``/info``, ``/events``."""

from __future__ import annotations

import json

from ..http import web

from .. import filters as F
from ..errors import InvalidArgument
from ..events import EVENT_FILTERS
from ..timestamps import parse_timestamp
from .middleware import add_common_headers
from .util import daemon_of, json_response

routes = web.RouteTableDef()

PING_HEADERS = {
    "Builder-Version": "1",
    "Swarm": "inactive",
    "Cache-Control": "no-cache, no-store, must-revalidate",
    "Pragma": "no-cache",
}
PING_BODY = b"OK"


@routes.get("/_ping")  # also answers HEAD (the server drops the body)
async def ping(request: web.Request) -> web.Response:
    return web.Response(body=PING_BODY, content_type="text/plain", headers=PING_HEADERS)


@routes.get("/version")
async def version(request: web.Request) -> web.Response:
    return json_response(daemon_of(request).host.version())


@routes.get("/info")
async def info(request: web.Request) -> web.Response:
    return json_response(await daemon_of(request).info())


@routes.get("/events")
async def events(request: web.Request) -> web.StreamResponse:
    q = request.query
    since = parse_timestamp(q.get("since"), "since")
    until = parse_timestamp(q.get("until"), "until")
    if since is not None and until is not None and until < since:
        raise InvalidArgument("`since` time must be before `until` time")
    filters = F.parse(q.get("filters"), EVENT_FILTERS)
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    add_common_headers(response)
    await response.prepare(request)
    async for event in daemon_of(request).events.stream(since, until, filters):
        await response.write(json.dumps(event.to_json()).encode() + b"\n")
    await response.write_eof()
    return response


