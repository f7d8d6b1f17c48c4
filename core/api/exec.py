"""Exec routes: ``POST /containers/{id}/exec``, ``/exec/{id}/start|resize``, ``GET /exec/{id}/json``."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from typing import TYPE_CHECKING

from ..http import web

from ..containers import effective
from ..containers.detachkeys import parse_detach_keys
from ..containers.execs import ExecInstance, ExecService
from ..drivers.runtime import ExecStartError
from ..errors import InvalidArgument, NotSupported
from ..runtime.logfile import LogRecord
from .hijack import Hijacked, hijack
from .stdin import open_fifo_writer, pump_stdin, run_streams
from .util import daemon_of, json_response, resize_size
from ..tasks import spawn

if TYPE_CHECKING:  # models (msgspec and the generated schema, ~1 MB) are imported by the handlers that decode a body
    from . import models

routes = web.RouteTableDef()


def execs(request: web.Request) -> ExecService:
    svc = daemon_of(request).execs  # the containers service's, set by Daemon.start
    if svc is None:
        raise NotSupported("containers are not available on this daemon")
    return svc


def _frame(tty: bool, stream: int, data: bytes) -> bytes:
    return data if tty else LogRecord(stream, 0, data).frame()


def _console_size(size: list[int] | None | models.UnsetType) -> tuple[int, int] | None:
    """``[height, width]`` (Go's [2]uint: other lengths are ignored, as before); a size no
    terminal takes is a 400."""
    if not isinstance(size, list) or len(size) != 2:
        return None
    if max(size) > 0xFFFF:
        raise InvalidArgument(f"invalid ConsoleSize {size}: out of range (0-65535)")
    return size[0], size[1]


@routes.post("/containers/{id}/exec")
async def create(request: web.Request) -> web.Response:
    from . import models

    req = await models.parse(request, models.ExecConfig)
    _console_size(req.ConsoleSize)
    await effective.authorize_exec(request, execs(request).containers, request.match_info["id"])
    e = execs(request).create(request.match_info["id"], models.plain(req))  # the service takes dicts
    return json_response({"Id": e.id}, status=201)


@routes.get("/exec/{id}/json")
async def inspect(request: web.Request) -> web.Response:
    svc = execs(request)
    return json_response(svc.inspect(svc.get(request.match_info["id"])))


@routes.post("/exec/{id}/resize")
async def resize(request: web.Request) -> web.Response:
    svc = execs(request)
    e = svc.get(request.match_info["id"])
    svc.resize(e, *resize_size(request))
    return web.Response(status=200)


@routes.post("/exec/{id}/start")
async def start(request: web.Request) -> web.StreamResponse:
    svc = execs(request)
    e = svc.get(request.match_info["id"])
    await effective.authorize_exec(request, svc.containers, e.container_id, e.id)  # whoever created it
    from . import models

    req = await models.parse(request, models.ExecStartConfig, required=False)
    # As moby's router: the pty is the create config's Tty; start's Tty only chooses raw or
    # multiplexed output (docker-py starts a Tty exec with Tty: false and demuxes the frames).
    tty = req.Tty if isinstance(req.Tty, bool) else e.tty
    size = _console_size(req.ConsoleSize)
    if size is not None and size[0]:
        e.console_size = size
    if req.Detach:
        e.attach_stdin = False
        await svc.start(e)
        spawn(svc.cleanup(e), f"cleanup of exec {e.id[:12]}")
        return web.Response(status=200)

    if e.started:  # 409 before the hijack
        await svc.start(e)
    # Docker takes the keys from the exec's create config; a query parameter overrides them
    keys = parse_detach_keys(request.query.get("detachKeys") or e.detach_keys) if tty else b""
    content_type = "application/vnd.docker.raw-stream" if tty else "application/vnd.docker.multiplexed-stream"
    # The process starts while the 101 goes out and the client reads it: its output waits in
    # the exec's log until the client has read the headers (Hijacked.peer_ready), and a start
    # error is still reported in the stream. A client gone before the stream has its process
    # killed (Docker would not have started it).
    starting = asyncio.ensure_future(svc.start(e))
    await asyncio.sleep(0)  # its spec is written and the shim's spawn handed over before the 101
    try:
        response, conn = await hijack(request, content_type, wait_read=False)  # output waits for that, an EOF not
    except BaseException:
        spawn(_cleanup_started(svc, e, starting), f"cleanup of exec {e.id[:12]}")
        raise
    try:
        await starting
    except ExecStartError as exc:
        with contextlib.suppress(ConnectionResetError):
            await conn.write(_frame(tty, 1, (exc.message + "\r\n").encode()))
        return response
    except Exception as exc:
        with contextlib.suppress(ConnectionResetError):
            await conn.write(_frame(tty, 1, (str(exc) + "\r\n").encode()))
        return response
    streams = {s for s, on in ((1, e.attach_stdout), (2, e.attach_stderr)) if on}
    reader = svc.logs(e)
    from . import zerocopy  # here: not at idle

    direct = zerocopy.usable(reader, conn)  # sendfile/splice: the payload never enters Python

    async def output() -> None:
        if direct:
            await zerocopy.send_output(conn, reader, tty, streams)
            return
        async with contextlib.aclosing(reader.follow()) as records:
            async for r in records:
                if r.stream in streams:
                    await conn.write(r.data if tty else r.frame())

    async def spliced_stdin() -> str:
        fd = await open_fifo_writer(svc.stdin_path(e))
        if fd is None:
            return "gone"
        try:
            return await zerocopy.splice_stdin(conn, fd)
        finally:
            os.close(fd)

    if not e.attach_stdin:
        stdin = None
    elif direct and not keys:  # no detach keys to look for (no TTY): spliced
        stdin = spliced_stdin()
    else:
        stdin = pump_stdin(conn, svc.stdin_path(e), keys, lambda: svc.stdin_detached(e))
    try:
        if await run_streams(output(), stdin) == "detached":
            svc.detached(e)
            spawn(svc.cleanup(e), f"cleanup of exec {e.id[:12]}")
            return response  # the process keeps running
    except ConnectionResetError:
        pass  # the client went away: the process keeps running, like Docker
    if not conn.lost.is_set():
        await e.done.wait()  # the client asks for ExitCode right after the stream ends
        end_stream(conn)
    spawn(svc.cleanup(e), f"cleanup of exec {e.id[:12]}")
    return response


def end_stream(conn: Hijacked) -> None:
    """The end of the output, now: the client sees EOF at once and asks for the exit code,
    instead of after the handler's return, the cleanup task and the response's teardown
    (a shutdown of our side; the connection closes when the handler returns)."""
    transport = conn.transport
    with contextlib.suppress(OSError, RuntimeError):
        if not transport.is_closing() and transport.can_write_eof() and not transport.get_write_buffer_size():
            transport.write_eof()


async def _cleanup_started(svc: ExecService, e: ExecInstance, starting: asyncio.Future[None]) -> None:
    """The hijack failed (the client went away) while the process was starting: it is killed
    (nobody would ever send its stdin or read its output), its state removed."""
    with contextlib.suppress(BaseException):
        await starting
    if e.running:
        with contextlib.suppress(Exception):
            await svc.runtime.exec_kill(e.container_id, e.id, signal.SIGKILL)
    await svc.cleanup(e)
