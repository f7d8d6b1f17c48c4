"""A client that hangs up: what the daemon's HTTP layer does to the handler still running
(dockyard.http.server), on a real socket."""

import asyncio

from dockyard.http import web


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


async def _serve(tmp_path, handler):
    app = web.Application()
    app.router.add_get("/x", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.UnixSite(runner, str(tmp_path / "s.sock")).start()
    return runner


async def _hang_up_after(tmp_path, marker: bytes) -> None:
    reader, writer = await asyncio.open_unix_connection(str(tmp_path / "s.sock"))
    writer.write(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
    await reader.readuntil(marker)
    writer.close()


async def _until(cond):
    while not cond():
        await asyncio.sleep(0.01)


def test_a_handler_whose_answer_ended_finishes_its_cleanup(tmp_path):
    """The client read the whole answer and left while the handler was still cleaning up
    (``docker export``: its rootfs is unmounted after the tar's end): no cancel may cut that
    short (the export left the container's rootfs mounted)."""
    gate, seen = asyncio.Event(), []

    async def handler(request):
        resp = web.StreamResponse()
        await resp.prepare(request)
        await resp.write(b"data")
        await resp.write_eof()
        try:
            await gate.wait()  # cleanup, while the client hangs up
            seen.append("cleaned up")
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise
        return resp

    async def go():
        runner = await _serve(tmp_path, handler)
        try:
            await _hang_up_after(tmp_path, b"0\r\n\r\n")
            await _until(lambda: not runner.server.connections)  # the server saw it go
            gate.set()
            await _until(lambda: seen)
            assert seen == ["cleaned up"]
        finally:
            await runner.cleanup()

    run(go())


def test_a_stream_whose_client_left_is_cancelled(tmp_path):
    """Mid-answer (logs or events following, nothing to write for now) the handler is
    cancelled when its client hangs up, not left waiting for its next write."""
    seen = []

    async def handler(request):
        resp = web.StreamResponse()
        await resp.prepare(request)
        await resp.write(b"first\n")
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise
        return resp

    async def go():
        runner = await _serve(tmp_path, handler)
        try:
            await _hang_up_after(tmp_path, b"first\n")
            await _until(lambda: seen)
            assert seen == ["cancelled"]
        finally:
            await runner.cleanup()

    run(go())
