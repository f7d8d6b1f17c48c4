"""Network routes: list, inspect, create, remove, connect, disconnect, prune."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..http import web

from ..errors import InvalidArgument
from .util import json_response, service_of

if TYPE_CHECKING:  # models (msgspec and the generated schema, ~1 MB) are imported by the handlers that decode a body
    from . import models

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
    from . import models

    req = await models.parse(request, models.NetworkCreateRequest)
    rec, warning = await service(request).create(models.plain(req))
    return json_response({"Id": rec.id, "Warning": warning}, status=201)


@routes.delete("/networks/{id}")
async def remove(request: web.Request) -> web.Response:
    await service(request).remove(request.match_info["id"])
    return web.Response(status=204)


def _container_ref(req: models.NetworkConnectRequest | models.NetworkDisconnectRequest) -> str:
    if not req.Container:
        raise InvalidArgument("Container is required")
    return req.Container


@routes.post("/networks/{id}/connect")
async def connect(request: web.Request) -> web.Response:
    from . import models

    req = await models.parse(request, models.NetworkConnectRequest)
    cfg = models.plain(req.EndpointConfig) if req.EndpointConfig else None
    await service(request).connect(request.match_info["id"], _container_ref(req), cfg)
    return web.Response(status=200)


@routes.post("/networks/{id}/disconnect")
async def disconnect(request: web.Request) -> web.Response:
    from . import models

    req = await models.parse(request, models.NetworkDisconnectRequest)
    await service(request).disconnect(request.match_info["id"], _container_ref(req), bool(req.Force))
    return web.Response(status=200)


@routes.post("/networks/prune")
async def prune(request: web.Request) -> web.Response:
    return json_response(await service(request).prune(request.query.get("filters")))

