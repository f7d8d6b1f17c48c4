"""Small helpers shared by the route modules."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from ..errors import InvalidArgument

if TYPE_CHECKING:
    from ..daemon import Daemon

DAEMON: web.AppKey["Daemon"] = web.AppKey("daemon")


def json_response(data: Any, status: int = 200) -> web.Response:
    """JSON with exactly ``application/json`` (the docker CLI shows the raw body of an error
    for any other content type), encoded by orjson: listing 50 containers spends most of its
    time encoding."""
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def daemon_of(request: web.Request) -> "Daemon":
    return request.app[DAEMON]


async def json_body(request: web.Request, *, required: bool = True) -> Any:
    """The request's JSON body; a body that does not parse is Docker's 400."""
    if request.get("body_unread"):  # authorization hooks never saw it: fail closed
        raise InvalidArgument(f"unsupported Content-Type header ({request.content_type}): "
                              "must be 'application/json'")
    raw = await request.read()
    if not raw.strip():
        if required:
            raise InvalidArgument("request body is empty; expected JSON")
        return {}
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        raise InvalidArgument(f"invalid JSON: {exc}") from None


def query_bool(request: web.Request, name: str, default: bool = False) -> bool:
    """Docker's boolean query values: ``1``/``true``/``True``; ``0``/``false``/empty."""
    value = request.query.get(name)
    if value is None:
        return default
    return value.strip().lower() not in ("", "0", "false", "no")
