"""Volume routes: create, list, inspect, remove, prune (``/system/df`` asks the service's ``df``)."""

from __future__ import annotations

from typing import Any

from ..http import web

from ..containers import effective
from .util import json_response, query_bool, service_of

# models (msgspec and the generated schema, ~1 MB): imported by the handlers that decode a body

routes = web.RouteTableDef()


def service(request: web.Request) -> Any:
    return service_of(request, "volumes")


@routes.post("/volumes/create")
async def create(request: web.Request) -> web.Response:
    from . import models

    req = await models.parse(request, models.VolumeCreateRequest, required=False)
    body = models.plain(req)  # the service still takes dicts
    svc = service(request)
    await effective.authorize_volume(request, svc)  # a bind of a host path is that path
    record = await svc.create(req.Name or None, req.Driver or None, body.get("DriverOpts"), body.get("Labels"))
    return json_response(svc.to_json(record), status=201)


@routes.get("/volumes")
async def list_(request: web.Request) -> web.Response:
    return json_response(service(request).list(request.query.get("filters")))


@routes.get("/volumes/{name}")
async def inspect(request: web.Request) -> web.Response:
    svc = service(request)
    return json_response(svc.to_json(svc.get(request.match_info["name"])))


@routes.delete("/volumes/{name}")
async def remove(request: web.Request) -> web.Response:
    await service(request).remove(request.match_info["name"], force=query_bool(request, "force"))
    return web.Response(status=204)


@routes.post("/volumes/prune")
async def prune(request: web.Request) -> web.Response:
    return json_response(await service(request).prune(request.query.get("filters"), request["api_version"]))
