"""Small helpers shared by the route modules."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING, Any, Awaitable, Callable

import orjson
from ..http import web

from ..errors import DockyardError, InvalidArgument, NotSupported

if TYPE_CHECKING:
    from ..daemon import Daemon

DAEMON: web.AppKey["Daemon"] = web.AppKey("daemon")


def json_response(data: Any, status: int = 200) -> web.Response:
    """JSON with exactly ``application/json`` (the docker CLI shows the raw body of an error
    for any other content type), encoded by orjson: listing 50 containers spends most of its
    time encoding. orjson refuses integers beyond 64 bits, which a loaded image's config may
    hold: the standard encoder takes those."""
    try:
        body = orjson.dumps(data)
    except TypeError:
        body = json.dumps(data).encode()
    return web.Response(body=body, status=status, content_type="application/json")


def query_int(request: web.Request, name: str, default: int | None = None, *, minimum: int | None = None) -> int | None:
    """An integer query parameter (Go's strconv.Atoi): anything else is a 400 naming it."""
    value = request.query.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value, 10)
    except ValueError:
        raise InvalidArgument(f"invalid value for {name}: {value!r}: not an integer") from None
    if not -(1 << 63) <= number < (1 << 63) or (minimum is not None and number < minimum):
        raise InvalidArgument(f"invalid value for {name}: {value!r}: out of range")
    return number


def daemon_of(request: web.Request) -> "Daemon":
    return request.app[DAEMON]


def service_of(request: web.Request, name: str) -> Any:
    """The daemon's ``name`` service (``containers``, ``networks``, ``volumes``)."""
    svc = getattr(daemon_of(request), name, None)
    if svc is None:
        raise NotSupported(f"{name} are not available on this daemon")
    return svc


def resize_size(request: web.Request) -> tuple[int, int]:
    """``h`` and ``w`` of a resize request (container or exec): integers a terminal can take."""
    size = []
    for name in ("h", "w"):
        value = request.query.get(name) or "0"
        try:
            number = int(value, 10)
        except ValueError:
            raise InvalidArgument(f"invalid resize: {name}={value!r} is not an integer") from None
        if not 0 <= number <= 0xFFFF:
            raise InvalidArgument(f"invalid resize: {name}={value!r} is out of range (0-65535)")
        size.append(number)
    return size[0], size[1]


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
        return json.loads(raw, parse_int=_int64)
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        raise InvalidArgument(f"invalid JSON: {exc}") from None


def _int64(text: str) -> int:
    """JSON integers as Go decodes them into the API's int64 fields: larger ones are a 400, not
    a value stored and then failing every later response."""
    value = int(text)
    if not -(1 << 63) <= value < (1 << 63):
        raise ValueError(f"number {text} overflows a 64-bit integer")
    return value


def query_bool(request: web.Request, name: str, default: bool = False) -> bool:
    """Docker's boolean query values: ``1``/``true``/``True``; ``0``/``false``/empty."""
    return query_flag(request.query, name, default)


def query_flag(query: Any, name: str, default: bool = False) -> bool:
    """``query_bool`` of a query mapping."""
    value = query.get(name)
    if value is None:
        return default
    return value.strip().lower() not in ("", "0", "false", "no")


async def drain_body(request: web.Request) -> None:
    """Read what is left of a body, so that a client still sending it gets our error answer."""
    try:
        while await request.content.readany():
            pass
    except Exception:
        pass


def json_line(value: Any) -> bytes:
    """One message of Docker's progress stream (``docker pull``/``load``/``build``)."""
    return json.dumps(value).encode() + b"\r\n"


async def stream_progress(request: web.Request, run: Callable[[Callable[[dict[str, Any]], None]], Awaitable[Any]],
                          *, what: str, finish: Callable[[Any], list[dict[str, Any]]] | None = None,
                          ) -> web.StreamResponse:
    """Run ``run(progress)`` and stream the messages it reports (``progress`` may be called
    from any thread), then ``finish(result)``'s. A failure before the first message is a plain
    HTTP error (after draining the request body); after it, Docker's ``errorDetail`` line."""
    from .middleware import add_common_headers

    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    add_common_headers(response)

    def progress(msg: dict[str, Any]) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, msg)

    async def write(msg: dict[str, Any]) -> None:
        if not response.prepared:
            await response.prepare(request)
        await response.write(json_line(msg))

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
        result = task.result()
    except BaseException as exc:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        elif not task.cancelled():
            task.exception()  # retrieved: reported below (or the request is being cancelled)
        if not isinstance(exc, Exception):
            raise  # cancelled: nothing more to send
        if not response.prepared:
            await drain_body(request)
            raise
        if not isinstance(exc, DockyardError):
            logging.getLogger("dockyard.api").exception("%s failed", what)
        await write({"errorDetail": {"message": str(exc)}, "error": str(exc)})
    else:
        for msg in finish(result) if finish is not None else []:
            await write(msg)
    if not response.prepared:
        await response.prepare(request)
    await response.write_eof()
    return response
