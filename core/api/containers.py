"""Container routes: create, lifecycle verbs, inspect/list, logs, attach, stats, top, changes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import time
from typing import Any

from ..http import web

from ..errors import InvalidArgument, NoSuchContainer, NotSupported
from ..lifecycle import State
from ..runtime.logfile import LogRecord, frame_lines
from ..containers import options
from ..containers import effective
from ..containers import queries
from ..containers.detachkeys import parse_detach_keys
from .hijack import hijack
from .stdin import pump_stdin, run_streams
from .middleware import add_common_headers
from ..timestamps import parse_timestamp, rfc3339_nano_fixed
from .util import json_response, query_bool, query_flag, query_int, resize_size, service_of

# models (msgspec and the generated schema, ~1 MB): imported by the handlers that decode a body

routes = web.RouteTableDef()


def service(request: web.Request) -> Any:
    return service_of(request, "containers")


def _timeout(request: web.Request) -> int | None:
    return query_int(request, "t" if request.query.get("t") else "timeout")


@routes.post("/containers/create")
async def create(request: web.Request) -> web.Response:
    from . import models

    req = await models.parse(request, models.ContainerCreateRequest)
    platform = request.query.get("platform")
    images = service(request).images
    if platform and images is not None and req.Image:
        options.check_platform(images.resolve(req.Image).config or {}, platform)  # --platform
    # the service still takes dicts: the validated request, re-encoded (next: the Struct itself)
    warnings: list[str] = []
    c = await service(request).create(models.plain(req), request.query.get("name") or None, warnings)
    return json_response({"Id": c.id, "Warnings": warnings}, status=201)


def list_args(query: Any) -> dict[str, Any]:
    """The list's arguments from its query (also read by the fast path, dockyard.api.fastpath)."""
    try:
        limit = int(query.get("limit") or -1)
    except ValueError:
        raise InvalidArgument("invalid limit") from None
    return {"all_": query_flag(query, "all"), "limit": limit, "filters": query.get("filters"),
            "size": query_flag(query, "size")}


@routes.get("/containers/json")
async def list_(request: web.Request) -> web.Response:
    body = queries.list_bytes(service(request), **list_args(request.query))
    return web.Response(body=body, content_type="application/json")


@routes.get("/containers/{id}/json")
async def inspect(request: web.Request) -> web.Response:
    from . import models

    data = service(request).inspect(request.match_info["id"], size=query_bool(request, "size"))
    return json_response(models.render_inspect(data))  # spec types, whatever an old record holds


@routes.post("/containers/{id}/start")
async def start(request: web.Request) -> web.Response:
    await service(request).start(request.match_info["id"])
    return web.Response(status=204)


@routes.post("/containers/{id}/stop")
async def stop(request: web.Request) -> web.Response:
    await service(request).stop(request.match_info["id"], _timeout(request), request.query.get("signal"))
    return web.Response(status=204)


@routes.post("/containers/{id}/restart")
async def restart(request: web.Request) -> web.Response:
    await service(request).restart(request.match_info["id"], _timeout(request), request.query.get("signal"))
    return web.Response(status=204)


@routes.post("/containers/{id}/kill")
async def kill(request: web.Request) -> web.Response:
    await service(request).kill(request.match_info["id"], request.query.get("signal"))
    return web.Response(status=204)


WAIT_CONDITIONS = ("not-running", "next-exit", "removed")


@routes.post("/containers/{id}/wait")
async def wait(request: web.Request) -> web.StreamResponse:
    svc = service(request)
    c = svc.get(request.match_info["id"])  # 404 before the 200 is sent
    condition = request.query.get("condition") or "not-running"
    if condition not in WAIT_CONDITIONS:  # 400 before the 200 is sent
        raise InvalidArgument(f"invalid condition: {condition!r}")
    task = asyncio.ensure_future(svc.wait(c.id, condition))
    # Docker sends the headers at once so clients know the wait is registered
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    add_common_headers(response)
    await response.prepare(request)
    done = await task
    with contextlib.suppress(ConnectionResetError):  # the client left (e.g. it detached)
        await response.write(json.dumps({"StatusCode": done.exit_code,
                                         "Error": {"Message": done.error} if done.error else None}).encode() + b"\n")
        await response.write_eof()
    return response


@routes.delete("/containers/{id}")
async def remove(request: web.Request) -> web.Response:
    if query_bool(request, "link"):  # `docker rm --link NAME` without a parent: moby's rmLink
        from ..containers import startopts

        await startopts.remove_link(service(request), request.match_info["id"])
        return web.Response(status=204)
    await service(request).remove(request.match_info["id"], force=query_bool(request, "force"),
                                  volumes=query_bool(request, "v"))
    return web.Response(status=204)


@routes.delete("/containers/{id}/{link}")
async def remove_link(request: web.Request) -> web.Response:
    """``docker rm --link parent/alias``: the only DELETE whose container name has a "/"."""
    name = f"{request.match_info['id']}/{request.match_info['link']}"
    if not query_bool(request, "link"):
        raise NoSuchContainer(name)
    from ..containers import startopts

    await startopts.remove_link(service(request), name)
    return web.Response(status=204)


@routes.post("/containers/{id}/rename")
async def rename(request: web.Request) -> web.Response:
    await service(request).rename(request.match_info["id"], request.query.get("name", ""))
    return web.Response(status=204)


@routes.post("/containers/{id}/pause")
async def pause(request: web.Request) -> web.Response:
    await service(request).pause(request.match_info["id"])
    return web.Response(status=204)


@routes.post("/containers/{id}/unpause")
async def unpause(request: web.Request) -> web.Response:
    await service(request).unpause(request.match_info["id"])
    return web.Response(status=204)


@routes.post("/containers/{id}/update")
async def update(request: web.Request) -> web.Response:
    from . import models

    req = await models.parse(request, models.ContainerUpdateRequest)
    warnings = await service(request).update(request.match_info["id"], models.plain(req))
    return json_response({"Warnings": warnings})


@routes.post("/containers/prune")
async def prune(request: web.Request) -> web.Response:
    return json_response(await service(request).prune(request.query.get("filters")))


@routes.post("/containers/{id}/resize")
async def resize(request: web.Request) -> web.Response:
    svc = service(request)
    c = svc.get(request.match_info["id"])
    h, w = resize_size(request)
    if c.state != State.RUNNING:
        raise _not_running(c.id)
    if not c.config.get("Tty"):
        raise InvalidArgument(f"cannot resize container {c.id}: it has no TTY (create it with Tty: true)")
    svc.runtime.resize(c.id, h, w)  # a runtime without the "tty" capability: 400 naming it
    return web.Response(status=200)


def _not_running(cid: str) -> Exception:
    from ..errors import Conflict

    return Conflict(f"Container {cid} is not running")


# -- logs and attach -----------------------------------------------------------------------


def _stream_content_type(tty: bool) -> str:
    return "application/vnd.docker.raw-stream" if tty else "application/vnd.docker.multiplexed-stream"


def _rfc3339(ns: int) -> bytes:
    return (rfc3339_nano_fixed(ns) + " ").encode()


class Framer:
    """Turns log records into the bytes a client gets: framed (non-TTY) or raw, with timestamps."""

    def __init__(self, tty: bool, streams: set[int], timestamps: bool) -> None:
        self.tty, self.streams, self.timestamps = tty, streams, timestamps

    def encode(self, r: LogRecord) -> bytes:
        if r.stream not in self.streams:
            return b""
        data = _rfc3339(r.timestamp_ns) + r.data if self.timestamps else r.data
        return data if self.tty else LogRecord(r.stream, r.timestamp_ns, data).frame()


def _streams(request: web.Request, default: bool) -> set[int]:
    out = set()
    if query_bool(request, "stdout", default):
        out.add(1)
    if query_bool(request, "stderr", default):
        out.add(2)
    return out


async def _write_records(response: Any, records: Any, framer: Framer, batch: int = 1 << 18) -> None:
    buf = bytearray()
    async for r in records:
        buf += framer.encode(r)
        if len(buf) >= batch:
            await response.write(bytes(buf))
            buf.clear()
    if buf:
        await response.write(bytes(buf))


async def _aiter(items: Any) -> Any:
    for item in items:
        yield item


async def _record_lines(records: Any) -> Any:
    """Each record cut at its newlines (a line cut between records is not waited for)."""
    async with contextlib.aclosing(records):
        async for r in records:
            data, start = r.data, 0
            while (nl := data.find(b"\n", start)) >= 0 and nl + 1 < len(data):
                yield LogRecord(r.stream, r.timestamp_ns, data[start:nl + 1])
                start = nl + 1
            yield LogRecord(r.stream, r.timestamp_ns, data[start:]) if start else r


def _tail(request: web.Request) -> int | None:
    value = request.query.get("tail", "all")
    if value in ("", "all"):
        return None
    try:
        return int(value)
    except ValueError:
        raise InvalidArgument(f"invalid tail value {value!r}") from None


@routes.get("/containers/{id}/logs")
async def logs(request: web.Request) -> web.StreamResponse:
    svc = service(request)
    c = svc.get(request.match_info["id"])
    if not svc.logging.readable(c):  # a log driver without ReadableLogs (none, syslog): as Docker
        raise NotSupported("configured logging driver does not support reading")
    streams = _streams(request, False)
    if not streams:
        raise InvalidArgument("Bad parameters: you must choose at least one stream")
    since = parse_timestamp(request.query.get("since"), "since") or 0
    until = parse_timestamp(request.query.get("until"), "until") or 0
    tail = _tail(request)
    tty = bool(c.config.get("Tty"))
    framer = Framer(tty, streams, query_bool(request, "timestamps"))
    reader = svc.logs(c)
    response = web.StreamResponse(headers={"Content-Type": _stream_content_type(tty)})
    add_common_headers(response)
    await response.prepare(request)
    if reader is not None:
        follow = query_bool(request, "follow") and c.running
        # one frame per line, as json-file stores them (docker-py's logs(stream=True) yields
        # frames: "hello\n", "world\n", not what one read of the pipe held)
        if follow:
            await _write_records(response, _record_lines(reader.follow(since, until, tail)), framer, batch=1)
        else:
            # lines framed and joined in ~1 MiB buffers, one write each
            lines = reader.tail(tail, since, until) if tail is not None else reader.records(since, until)
            prefix = _rfc3339 if framer.timestamps else None
            for chunk in frame_lines(lines, streams, tty, prefix):
                await response.write(chunk)
    await response.write_eof()
    return response


@routes.post("/containers/{id}/attach")
async def attach(request: web.Request) -> web.StreamResponse:
    """Non-interactive attach: stream the container's output until it exits, over a
    hijacked connection (``101 UPGRADED``, raw bytes, closed at the end)."""
    svc = service(request)
    c = svc.get(request.match_info["id"])
    await effective.authorize_use(svc, c, "attach")  # its process: all its privileges
    want_stdin = query_bool(request, "stdin") and bool(c.config.get("OpenStdin"))
    if want_stdin:
        svc.runtime.require(c.id, "stdin")  # before the 101: a 400 naming the runtime
    streams = _streams(request, False)
    tty = bool(c.config.get("Tty"))
    keys = parse_detach_keys(request.query.get("detachKeys")) if tty and want_stdin else b""
    attached_at = time.time_ns()
    response, conn = await hijack(request, _stream_content_type(tty))
    framer = Framer(tty, streams, False)
    async with svc.attachment(c):
        try:
            if query_bool(request, "logs"):
                reader = svc.logs(c)
                if reader is not None:
                    await _write_records(conn, _aiter(reader.records()), framer)
            stream = query_bool(request, "stream")
            if stream and (streams or want_stdin) and await svc.wait_started(c):
                await _attach_streams(svc, c, conn, framer, attached_at, want_stdin, keys)
        except ConnectionResetError:
            pass  # the client detached
    return response


@routes.get("/containers/{id}/attach/ws")
async def attach_ws(request: web.Request) -> web.WebSocketResponse:
    """``GET /containers/{id}/attach/ws`` (docker-py's ``attach_socket(ws=True)``): the output,
    raw (no multiplexing) in binary messages, as dockerd sends them since API 1.28. Output
    only: stdin over a websocket is not served (use the hijacked ``POST .../attach``)."""
    svc = service(request)
    c = svc.get(request.match_info["id"])
    await effective.authorize_use(svc, c, "attach")  # its process: all its privileges
    streams = _streams(request, False)
    attached_at = time.time_ns()
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    framer = Framer(True, streams, False)  # raw bytes
    async with svc.attachment(c):
        try:
            if query_bool(request, "logs") and (reader := svc.logs(c)) is not None:
                for r in reader.records():
                    if data := framer.encode(r):
                        await ws.send_bytes(data)
            if query_bool(request, "stream") and streams and await svc.wait_started(c):
                async with contextlib.aclosing(svc.runtime.logs(c.id).follow(attached_at)) as records:
                    async for r in records:
                        if data := framer.encode(r):
                            await ws.send_bytes(data)
        except ConnectionResetError:
            pass  # the client went away
    await ws.close()
    return ws


async def _attach_streams(svc: Any, c: Any, conn: Any, framer: Framer, attached_at: int, want_stdin: bool,
                          keys: bytes) -> None:
    """Output (from ``attached_at``) and stdin until the container ends or the client detaches."""
    async def output() -> None:
        if framer.streams:
            async with contextlib.aclosing(svc.runtime.logs(c.id).follow(attached_at)) as records:
                await _write_records(conn, records, framer, batch=1)
        else:
            await svc.wait(c.id)

    stdin = pump_stdin(conn, svc.runtime.stdin_path(c.id), keys,
                       lambda: svc.runtime.stdin_detach(c.id)) if want_stdin else None
    if await run_streams(output(), stdin) == "detached":
        svc.emit("detach", c)


# -- stats, top, changes -------------------------------------------------------------------


@routes.get("/containers/{id}/stats")
async def stats(request: web.Request) -> web.StreamResponse:
    svc = service(request)
    c = svc.get(request.match_info["id"])
    stream = query_bool(request, "stream", True)
    one_shot = query_bool(request, "one-shot")
    if not stream:
        previous = svc.stats(c, None) if not one_shot else None
        if previous is not None:
            await asyncio.sleep(1)
        return json_response(svc.stats(c, previous))
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    add_common_headers(response)
    await response.prepare(request)
    previous = None
    while True:
        current = svc.stats(c, previous)
        await response.write(json.dumps(current).encode() + b"\n")
        if not c.running:
            break
        previous = current
        await asyncio.sleep(1)
    await response.write_eof()
    return response


@routes.get("/containers/{id}/top")
async def top(request: web.Request) -> web.Response:
    svc = service(request)
    c = svc.get(request.match_info["id"])
    if not c.running:
        raise _not_running(c.id)
    pids = set(svc.pids(c))
    args = (request.query.get("ps_args") or "-ef").split()
    proc = await asyncio.create_subprocess_exec("ps", *args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise InvalidArgument(f"ps: {err.decode(errors='replace').strip()}")
    lines = out.decode(errors="replace").splitlines()
    titles = lines[0].split()
    try:
        pid_col = titles.index("PID")
    except ValueError:
        raise InvalidArgument("Couldn't find PID field in ps output") from None
    processes = []
    for line in lines[1:]:
        fields = line.split(None, len(titles) - 1)
        if len(fields) > pid_col and fields[pid_col].isdigit() and int(fields[pid_col]) in pids:
            processes.append(fields)
    return json_response({"Titles": titles, "Processes": processes})


@routes.get("/containers/{id}/changes")
async def changes(request: web.Request) -> web.Response:
    svc = service(request)
    c = svc.get(request.match_info["id"])
    return json_response(await asyncio.to_thread(svc.storage.changes, c.id) or None)
