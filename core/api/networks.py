"""Network routes: list, inspect, create, remove, connect, disconnect, prune."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..errors import InvalidArgument
from .util import json_body, json_response, service_of

routes = web.RouteTableDef()


def service(request: web.Request) -> Any:
    return service_of(request, "networks")


@routes.get("/networks")
async def list_(request: web.Request) -> web.Response:
    return json_response(service(request).list(request.query.get("filters")))


@routes.get("/networks/{id}")
async def inspect(request: web.Request) -> web.Response:
    if request.query.get("scope") not in (None, "", "local"):
        from ..errors import NoSuchNetwork

        raise NoSuchNetwork(request.match_info["id"])
    return json_response(service(request).inspect(request.match_info["id"]))


@routes.post("/networks/create")
async def create(request: web.Request) -> web.Response:
    rec, warning = await service(request).create(await json_body(request))
    return json_response({"Id": rec.id, "Warning": warning}, status=201)


@routes.delete("/networks/{id}")
async def remove(request: web.Request) -> web.Response:
    await service(request).remove(request.match_info["id"])
    return web.Response(status=204)


def _container_ref(body: Any) -> str:
    if not isinstance(body, dict) or not isinstance(body.get("Container"), str) or not body["Container"]:
        raise InvalidArgument("Container is required")
    return body["Container"]


@routes.post("/networks/{id}/connect")
async def connect(request: web.Request) -> web.Response:
    body = await json_body(request)
    cfg = body.get("EndpointConfig") if isinstance(body, dict) else None
    if cfg is not None and not isinstance(cfg, dict):
        raise InvalidArgument("EndpointConfig must be an object")
    await service(request).connect(request.match_info["id"], _container_ref(body), cfg)
    return web.Response(status=200)


@routes.post("/networks/{id}/disconnect")
async def disconnect(request: web.Request) -> web.Response:
    body = await json_body(request)
    await service(request).disconnect(request.match_info["id"], _container_ref(body), bool(body.get("Force")))
    return web.Response(status=200)


@routes.post("/networks/prune")
async def prune(request: web.Request) -> web.Response:
    return json_response(await service(request).prune(request.query.get("filters")))

