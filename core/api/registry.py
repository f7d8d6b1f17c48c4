"""Registry routes: ``POST /auth`` and ``GET /distribution/{name}/json`` here; pull
(``POST /images/create?fromImage=``) and push (``POST /images/{name}/push``) live in the images
route table and call :func:`pull` and :func:`push`.

Progress is Docker's JSON stream. The response starts with the first message, so an error
before it (a bad reference, a missing manifest, bad credentials) is a plain HTTP error, and
one after it is an ``errorDetail`` line, as dockerd does.
"""

from __future__ import annotations

from ..http import web

from ..errors import InvalidArgument, Unavailable
from ..registry import Credentials, RegistryService, decode_registry_auth
from .util import daemon_of, json_body, json_response, stream_progress

routes = web.RouteTableDef()


def registry_of(request: web.Request) -> RegistryService:
    svc = daemon_of(request).registry  # built by Daemon.start with the image service
    if svc is None:
        raise Unavailable("the image service is not running")
    return svc


def credentials(request: web.Request) -> Credentials:
    return decode_registry_auth(request.headers.get("X-Registry-Auth"))


async def pull(request: web.Request) -> web.StreamResponse:
    q = request.query
    svc = registry_of(request)
    creds = credentials(request)
    return await stream_progress(request, lambda progress: svc.pull(
        q["fromImage"], q.get("tag") or None, q.get("platform") or None, creds, progress), what="pull")


async def push(request: web.Request) -> web.StreamResponse:
    svc = registry_of(request)
    creds = credentials(request)
    name, tag = request.match_info["name"], request.query.get("tag") or None
    return await stream_progress(request, lambda progress: svc.push(name, tag, creds, progress), what="push")


@routes.get("/distribution/{name:.+}/json")
async def distribution_inspect(request: web.Request) -> web.Response:
    return json_response(await registry_of(request).inspect(request.match_info["name"], credentials(request)))


@routes.post("/auth")
async def auth(request: web.Request) -> web.Response:
    body = await json_body(request)
    if not isinstance(body, dict):
        raise InvalidArgument("invalid JSON: expected an object")
    creds = Credentials.from_json(body)
    return json_response(await registry_of(request).login(creds, str(body.get("serveraddress") or "")))
