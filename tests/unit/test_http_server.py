"""Dockyard's own HTTP/1.1 server (dockyard.http.server): what clients and attackers meet.

A real server on a Unix socket in the test's loop, raw bytes from the client side: pipelined
answers in order, chunked bodies, ``Expect: 100-continue``, request smuggling and oversized
heads refused, a client that hangs up cancels its (streaming or GET) handler, a client that
never reads stops its handler instead of filling the daemon's memory.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
from pathlib import Path
from typing import Any, Awaitable, Callable

import pytest

from dockyard.http import web

Body = Callable[[Path, dict[str, Any]], Awaitable[None]]


def make_app(state: dict[str, Any]) -> web.Application:
    routes = web.RouteTableDef()

    @routes.get("/slow")
    async def slow(request: web.Request) -> web.Response:
        state["calls"].append("slow")
        await state["release"].wait()
        return web.Response(text="slow")

    @routes.get("/fast/{n}")
    async def fast(request: web.Request) -> web.Response:
        state["calls"].append("fast" + request.match_info["n"])
        state["max_queue"] = max(state["max_queue"], len(request.protocol.queue))
        return web.Response(text="fast" + request.match_info["n"])

    @routes.post("/echo")
    async def echo(request: web.Request) -> web.Response:
        state["calls"].append("echo")
        return web.Response(body=await request.read())

    @routes.post("/refuse")
    async def refuse(request: web.Request) -> web.Response:
        state["calls"].append("refuse")
        return web.json_response({"message": "too large"}, status=413)

    @routes.get("/wait")
    async def wait(request: web.Request) -> web.Response:
        state["started"].set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            state["cancelled"].set_result(True)
            raise
        return web.Response()  # pragma: no cover

    @routes.post("/commit")
    async def commit(request: web.Request) -> web.Response:
        state["started"].set()
        await state["release"].wait()
        state["committed"].set_result(True)
        return web.Response(text="done")

    @routes.get("/flood")
    async def flood(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        chunk = b"x" * (1 << 20)
        for _ in range(256):  # 256 MiB if nothing waited
            await response.write(chunk)
            state["written"] += len(chunk)
            state["buffered"] = max(state["buffered"], request.transport.get_write_buffer_size())
        state["flood_done"] = True
        return response

    app = web.Application(client_max_size=0)
    app.add_routes(routes)
    return app


def run(tmp: Path, body: Body) -> dict[str, Any]:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        state: dict[str, Any] = {"calls": [], "release": asyncio.Event(), "started": asyncio.Event(),
                                 "cancelled": loop.create_future(), "committed": loop.create_future(),
                                 "written": 0, "buffered": 0, "flood_done": False, "max_queue": 0}
        runner = web.AppRunner(make_app(state), shutdown_timeout=0.5)
        await runner.setup()
        sock = tmp / "api.sock"
        await web.UnixSite(runner, str(sock)).start()
        state["runner"] = runner
        try:
            await body(sock, state)
        finally:
            state["release"].set()
            await runner.cleanup()
        out.update(state)

    out: dict[str, Any] = {}
    asyncio.run(main())
    return out


async def read_answer(reader: asyncio.StreamReader) -> bytes:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    m = re.search(rb"(?i)content-length: (\d+)", head)
    return head + (await asyncio.wait_for(reader.readexactly(int(m.group(1))), 10) if m else b"")


async def read_all(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.read(), 10)  # to the server's close


def status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def test_pipelined_requests_are_handled_one_at_a_time_and_answered_in_order(tmp_path: Path) -> None:
    async def body(sock: Path, state: dict[str, Any]) -> None:
        reader, writer = await asyncio.open_unix_connection(str(sock))
        writer.write(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n" + b"".join(
            b"GET /fast/%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(3)))
        await writer.drain()
        while not state["calls"]:
            await asyncio.sleep(0.01)
        for _ in range(20):
            await asyncio.sleep(0)
        assert state["calls"] == ["slow"], "a pipelined request ran before the one ahead of it finished"
        state["release"].set()
        answers = [await read_answer(reader) for _ in range(4)]
        assert [a.rpartition(b"\r\n\r\n")[2] for a in answers] == [b"slow", b"fast0", b"fast1", b"fast2"]
        writer.close()

    run(tmp_path, body)


def test_chunked_bodies_in_pieces_and_the_connection_goes_on(tmp_path: Path) -> None:
    async def body(sock: Path, state: dict[str, Any]) -> None:
        reader, writer = await asyncio.open_unix_connection(str(sock))
        pieces = [b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
                  b"5\r\nhel", b"lo\r\n", b"1;ext=1\r\n ", b"\r\n6\r\nworld!\r\n0\r\n\r\n"]
        for p in pieces:
            writer.write(p)
            await writer.drain()
            await asyncio.sleep(0.01)
        first = await read_answer(reader)
        assert status(first) == 200 and first.endswith(b"\r\n\r\nhello world!")
        # a big chunked body (flow control on the way) and a second request on the connection
        big = bytes(range(256)) * 8192  # 2 MiB
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(big[i:i + 65536]), big[i:i + 65536])
                          for i in range(0, len(big), 65536))
        writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"
                     + b"GET /fast/9 HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        second = await read_answer(reader)
        assert second.partition(b"\r\n\r\n")[2] == big
        assert (await read_answer(reader)).endswith(b"fast9")
        # a malformed chunk size: 400, closed
        writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
        bad = await read_all(reader)
        assert status(bad) == 400 and b"Connection: close" in bad
        writer.close()

    run(tmp_path, body)


def test_expect_100_continue_is_sent_when_the_handler_reads_and_never_when_it_refuses(tmp_path: Path) -> None:
    async def body(sock: Path, state: dict[str, Any]) -> None:
        reader, writer = await asyncio.open_unix_connection(str(sock))
        writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        await writer.drain()
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"hello")
        answer = await read_answer(reader)
        assert status(answer) == 200 and answer.endswith(b"hello")
        writer.close()
        # refused without reading: the answer comes at once, no 100, and the body is never needed
        reader, writer = await asyncio.open_unix_connection(str(sock))
        writer.write(b"POST /refuse HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n"
                     b"Expect: 100-continue\r\nConnection: close\r\n\r\n")
        await writer.drain()
        refused = await read_all(reader)
        assert status(refused) == 413 and b"100 Continue" not in refused
        writer.close()

    run(tmp_path, body)


def test_request_smuggling_is_refused(tmp_path: Path) -> None:
    async def body(sock: Path, state: dict[str, Any]) -> None:
        attacks = [
            # CL.TE: the front end reads 6 bytes, we would read a chunked body then "GET /fast/1"
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"0\r\n\r\nGET /fast/1 HTTP/1.1\r\nHost: x\r\n\r\n",
            # TE.CL, the headers the other way round
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"
            b"8\r\nSMUGGLED\r\n0\r\n\r\n",
            # two lengths
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 30\r\n\r\nhello"
            b"GET /fast/2 HTTP/1.1\r\n\r\n",
            # an obfuscated Transfer-Encoding next to a length
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: xchunked\r\n\r\n"
            b"1\r\nZ\r\n0\r\n\r\n",
        ]
        for attack in attacks:
            reader, writer = await asyncio.open_unix_connection(str(sock))
            writer.write(attack)
            await writer.drain()
            answer = await read_all(reader)
            assert status(answer) == 400, attack
            assert answer.count(b"HTTP/1.1 ") == 1 and b"Connection: close" in answer, answer
            assert json.loads(answer.partition(b"\r\n\r\n")[2])["message"]
            writer.close()
        assert state["calls"] == [], "a smuggled request reached a handler"

    run(tmp_path, body)


def test_oversized_heads_are_refused_before_they_are_buffered(tmp_path: Path) -> None:
    async def body(sock: Path, state: dict[str, Any]) -> None:
        def exchange(data: bytes, pieces: int) -> bytes:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
                client.settimeout(10)
                client.connect(str(sock))
                step = max(1, len(data) // pieces)
                try:
                    for i in range(0, len(data), step):
                        client.sendall(data[i:i + step])
                except ConnectionError:
                    pass  # refused and closed while we were still sending
                answer = b""
                while chunk := client.recv(65536):
                    answer += chunk
                return answer

        async def send(data: bytes, pieces: int = 1) -> bytes:
            return await asyncio.get_running_loop().run_in_executor(None, exchange, data, pieces)

        long_url = await send(b"GET /fast/" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status(long_url) == 414
        long_field = await send(b"GET /fast/1 HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n")
        assert status(long_field) == 431
        many = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 4000) for i in range(40))  # 160 KB, each field fine
        many_fields = await send(b"GET /fast/1 HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n", pieces=40)
        assert status(many_fields) == 431
        # a head that never ends, dribbled: refused once it passes the limit, not kept growing
        endless = await send(b"GET /fast/1 HTTP/1.1\r\n" + b"X-A: b\r\n" * 20000, pieces=200)
        assert status(endless) == 431
        assert state["calls"] == []

    run(tmp_path, body)


def test_a_client_hanging_up_cancels_a_get_but_not_a_commit(tmp_path: Path) -> None:
    async def body(sock: Path, state: dict[str, Any]) -> None:
        reader, writer = await asyncio.open_unix_connection(str(sock))
        writer.write(b"GET /wait HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        await asyncio.wait_for(state["started"].wait(), 10)
        writer.close()
        assert await asyncio.wait_for(state["cancelled"], 10) is True
        # a state-changing request runs to its end (a create or commit is not cut half-way)
        state["started"].clear()
        reader, writer = await asyncio.open_unix_connection(str(sock))
        writer.write(b"POST /commit HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        await asyncio.wait_for(state["started"].wait(), 10)
        writer.close()
        await asyncio.sleep(0.05)
        state["release"].set()
        assert await asyncio.wait_for(state["committed"], 10) is True

    run(tmp_path, body)


def test_a_client_that_never_reads_stops_its_handler_not_the_daemons_memory(tmp_path: Path) -> None:
    async def body(sock: Path, state: dict[str, Any]) -> None:
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        client.connect(str(sock))
        client.sendall(b"GET /flood HTTP/1.1\r\nHost: x\r\n\r\n")
        server = state["runner"].server
        # wait until the handler is parked on the full transport (or, broken, has finished)
        for _ in range(1000):
            conns = list(server.connections)
            if state["flood_done"] or (conns and conns[0].writing_paused and state["written"]):
                break
            await asyncio.sleep(0.01)
        for _ in range(20):
            await asyncio.sleep(0.01)
        assert not state["flood_done"], "the handler wrote 256 MiB to a client that reads nothing"
        assert state["written"] <= 16 << 20
        assert state["buffered"] <= 4 << 20, state["buffered"]
        client.close()

    run(tmp_path, body)


def test_http10_head_and_unread_bodies(tmp_path: Path) -> None:
    async def body(sock: Path, state: dict[str, Any]) -> None:
        # HTTP/1.0 without keep-alive: answered and closed
        reader, writer = await asyncio.open_unix_connection(str(sock))
        writer.write(b"GET /fast/1 HTTP/1.0\r\n\r\n")
        answer = await read_all(reader)
        assert answer.startswith(b"HTTP/1.0 200 ") and answer.endswith(b"fast1")
        writer.close()
        # HEAD: the GET's headers, no body; then a body the handler did not read is skipped
        # and the connection serves the next request
        reader, writer = await asyncio.open_unix_connection(str(sock))
        writer.write(b"HEAD /fast/2 HTTP/1.1\r\nHost: x\r\n\r\n"
                     b"POST /refuse HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789"
                     b"GET /fast/3 HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 200 ") and b"Content-Length: 5" in head
        assert status(await read_answer(reader)) == 413
        assert (await read_answer(reader)).endswith(b"fast3")
        writer.close()

    run(tmp_path, body)


def test_shutdown_stops_listening_and_cancels_what_still_runs_after_the_timeout(tmp_path: Path) -> None:
    async def body(sock: Path, state: dict[str, Any]) -> None:
        reader, writer = await asyncio.open_unix_connection(str(sock))
        writer.write(b"GET /wait HTTP/1.1\r\nHost: x\r\n\r\n")
        idle_reader, idle_writer = await asyncio.open_unix_connection(str(sock))  # kept alive, no request
        await writer.drain()
        await asyncio.wait_for(state["started"].wait(), 10)
        await asyncio.wait_for(state["runner"].cleanup(), 10)  # shutdown_timeout=0.5, then cancelled
        assert state["cancelled"].done() and state["cancelled"].result() is True
        assert await asyncio.wait_for(idle_reader.read(), 10) == b""  # the idle connection was closed
        try:
            await asyncio.open_unix_connection(str(sock))
            raise AssertionError("still listening after shutdown")
        except OSError:
            pass
        writer.close()
        idle_writer.close()

    run(tmp_path, body)


def test_a_pipelining_flood_is_answered_in_order_up_to_a_bound_then_closed(tmp_path: Path) -> None:
    from dockyard.http.server import MAX_PIPELINED

    async def body(sock: Path, state: dict[str, Any]) -> None:
        flood = b"".join(b"GET /fast/%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(20000))

        def client() -> bytes:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
                c.settimeout(20)
                c.connect(str(sock))
                try:
                    c.sendall(flood)
                except ConnectionError:
                    pass
                out = b""
                while chunk := c.recv(1 << 16):
                    out += chunk
                return out

        answers = await asyncio.get_running_loop().run_in_executor(None, client)
        bodies = re.findall(rb"\r\n\r\n(fast\d+)", answers)
        assert bodies == [b"fast%d" % i for i in range(len(bodies))]  # in order, none lost between
        assert 0 < len(bodies) < 20000, "a flood was queued without bound"
        assert state["max_queue"] <= MAX_PIPELINED

    run(tmp_path, body)


def test_mutated_requests_get_an_answer_or_a_close_and_break_nothing(tmp_path: Path) -> None:
    import logging
    import random

    corpus = [
        b"GET /fast/1 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\nabc",
        b"GET /fast/2?a=%zz&b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        b"GET /slow HTTP/1.1\r\nUpgrade: tcp\r\nConnection: Upgrade\r\n\r\nraw bytes",
    ]
    noise = [b"\r", b"\n", b"\x00", b" ", b":", b"\xff", b"\r\n\r\n", b"Content-Length: 9\r\n",
             b"Transfer-Encoding: chunked\r\n", b"%", b"?", b"HTTP/1.1", b"\t"]
    rng = random.Random(1806)

    def mutate(data: bytes) -> bytes:
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(data) + 1)
            op = rng.randrange(4)
            if op == 0:
                data = data[:i] + rng.choice(noise) + data[i:]
            elif op == 1:
                data = data[:i] + data[i + rng.randint(1, 8):]
            elif op == 2 and i < len(data):
                data = data[:i] + bytes([data[i] ^ (1 << rng.randrange(8))]) + data[i + 1:]
            else:
                data = data[:i]
        return data

    cases = [mutate(rng.choice(corpus)) for _ in range(300)]
    errors: list[logging.LogRecord] = []

    class Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.ERROR:
                errors.append(record)

    catch = Catch()

    async def body(sock: Path, state: dict[str, Any]) -> None:
        state["release"].set()  # /slow answers at once

        def exchange(data: bytes) -> bytes:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
                c.settimeout(10)
                c.connect(str(sock))
                try:
                    c.sendall(data)
                    c.shutdown(socket.SHUT_WR)  # nothing more comes: an incomplete request ends here
                except OSError:
                    pass
                out = b""
                try:
                    while chunk := c.recv(65536):
                        out += chunk
                except ConnectionError:
                    pass
                return out

        loop = asyncio.get_running_loop()
        for data in cases:
            answer = await loop.run_in_executor(None, exchange, data)
            assert answer == b"" or re.match(rb"HTTP/1\.[01] [1-5]\d\d ", answer), (data, answer[:200])
        # the server still serves, and keeps nothing of the fuzzed connections
        good = await loop.run_in_executor(None, exchange, b"GET /fast/7 HTTP/1.1\r\nConnection: close\r\n\r\n")
        assert good.startswith(b"HTTP/1.1 200 ") and good.endswith(b"fast7")
        server = state["runner"].server
        for _ in range(500):
            if not server.connections:
                break
            await asyncio.sleep(0.01)
        assert not server.connections

    for name in ("dockyard.http", "asyncio"):
        logging.getLogger(name).addHandler(catch)
    try:
        run(tmp_path, body)
    finally:
        for name in ("dockyard.http", "asyncio"):
            logging.getLogger(name).removeHandler(catch)
    assert not errors, [(r.getMessage(), r.exc_info) for r in errors[:3]]


def test_a_header_value_with_a_newline_cannot_split_the_response(tmp_path: Path) -> None:
    async def body(sock: Path, state: dict[str, Any]) -> None:
        async def inject(request: web.Request) -> web.Response:
            return web.Response(text="ok", headers={"X-Name": request.query["v"]})

        state["runner"].app.router.add_get("/inject", inject)
        reader, writer = await asyncio.open_unix_connection(str(sock))
        writer.write(b"GET /inject?v=a%0D%0ASet-Cookie:%20evil=1%0D%0A%0D%0Aowned HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = await read_answer(reader)
        assert status(answer) == 500 and b"evil" not in answer and b"owned" not in answer
        writer.close()

    run(tmp_path, body)


def test_drain_after_a_takeover_does_not_wait_forever() -> None:
    """A connection taken over (attach, exec: ``transport.set_protocol``) while its writing
    was paused: the resume goes to the new protocol, so the handler's last drain (write_eof)
    must not wait for one that never comes here."""
    from dockyard.http.server import HttpProtocol, Server

    class Transport:
        protocol: Any = None

        def get_protocol(self) -> Any:
            return self.protocol

        def get_extra_info(self, name: str, default: Any = None) -> Any:
            return default

    async def main() -> None:
        proto = HttpProtocol(Server(web.Application()))
        transport = Transport()
        transport.protocol = proto
        proto.connection_made(transport)  # type: ignore[arg-type]
        proto.pause_writing()
        with pytest.raises(asyncio.TimeoutError):  # still ours: the drain waits for the resume
            await asyncio.wait_for(proto.drain(), 0.05)
        transport.protocol = object()  # taken over
        await asyncio.wait_for(proto.drain(), 5)

    asyncio.run(main())
