"""The ``/_ping`` fast path (dockyard.api.fastpath): same bytes as the normal path, every
request hook still runs, answers stay in order, and pings really skip the server's handler path.

In-process: the real middleware, router and connection handler on a Unix socket in a temp dir.
"""

from __future__ import annotations

import asyncio
import re
import warnings
from pathlib import Path
from typing import Any

from dockyard.http import web

from dockyard import hookimpl
from dockyard.api import containers as containers_api
from dockyard.api import system
from dockyard.api.fastpath import FastPath
from dockyard.api.limits import FAST_PATH, LimitedAppRunner, Limits
from dockyard.api.middleware import make_middleware
from dockyard.api.router import VersionedRouter
from dockyard.api.util import DAEMON
from dockyard.builtin import error_renderer
from dockyard.identity import Decision, Identity
from dockyard.plugins import Plugins


class Hooks:
    """A request-hook plugin recording what it saw; ``deny`` paths are refused, ``slow``
    ones wait in an async authorization first."""

    def __init__(self, *, slow: bool = False) -> None:
        self.seen: list[tuple[str, str, str, str]] = []
        self.finished: list[tuple[str, int, str]] = []
        self.slow = slow

    @hookimpl
    def authenticate_request(self, request: Any, peer: Any) -> Identity:
        return Identity(name=f"uid:{peer.uid}", kind="unix", uid=peer.uid)

    @hookimpl
    def authorize_request(self, request: Any, identity: Identity) -> Any:
        self.seen.append((request.method, request.path, request["route"], identity.name))

        async def later() -> Decision:
            await asyncio.sleep(0.01)
            return Decision(allow="deny" not in request.headers.get("X-Test", ""), message="no pings")

        if self.slow:
            return later()
        if "deny" in request.headers.get("X-Test", ""):
            return Decision(allow=False, message="no pings")
        return None

    @hookimpl
    def request_finished(self, request: Any, identity: Identity, response: Any, duration: float) -> None:
        self.finished.append((request.path, response.status, identity.name))


async def serve(tmp: Path, hooks: Any, calls: list[int], access_log: Any = None,
                daemon: Any = None, *more_hooks: Any) -> tuple[LimitedAppRunner, Path]:
    plugins = Plugins()
    plugins.pm.register(error_renderer, name="builtin_errors")
    if hooks is not None:
        plugins.pm.register(hooks, name="test_hooks")
    for i, extra in enumerate(more_hooks):
        plugins.pm.register(extra, name=f"test_hooks_{i}")
    middleware = make_middleware(plugins)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        app = web.Application(router=VersionedRouter(), middlewares=[middleware])
    if daemon is not None:  # the real container routes on a daemon with only a container service
        app[DAEMON] = daemon
        app.add_routes(containers_api.routes)

    async def ping(request: Any) -> web.Response:  # the real handler, counted
        calls.append(1)
        return await system.ping(request)

    app.router.add_get("/_ping", ping)
    app[FAST_PATH] = lambda: FastPath(app, middleware, middleware.request_hooks, ping)
    runner = LimitedAppRunner(app, limits=Limits(), access_log=access_log, handle_signals=False)
    await runner.setup()
    sock = tmp / "api.sock"
    await web.UnixSite(runner, str(sock)).start()
    return runner, sock


async def exchange(sock: Path, *chunks: bytes, answers: int | None = None) -> list[bytes]:
    """Send each chunk (one request, or several pipelined) on one kept-alive connection and
    read its answers before the next (``answers``: read that many after the last chunk)."""
    reader, writer = await asyncio.open_unix_connection(str(sock))
    out = []
    for i, raw in enumerate(chunks):
        writer.write(raw)
        n = raw.count(b" HTTP/1.1\r\n") if answers is None or i < len(chunks) - 1 else answers
        for _ in range(n):
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"Content-Length: (\d+)", head).group(1))  # type: ignore[union-attr]
            body = b"" if raw.startswith(b"HEAD") else await reader.readexactly(length)
            out.append(head + body)
    writer.close()
    return out


def request(method: str, path: str, *extra: str) -> bytes:
    return "".join([f"{method} {path} HTTP/1.1\r\nHost: docker\r\n", *(h + "\r\n" for h in extra), "\r\n"]).encode()


def without_date(answer: bytes) -> bytes:
    return re.sub(rb"Date: [^\r]*\r\n", b"", answer)


def run(tmp: Path, hooks: Any, body: Any, access_log: Any = None) -> list[int]:
    calls: list[int] = []

    async def main() -> None:
        runner, sock = await serve(tmp, hooks, calls, access_log)
        try:
            await body(sock, calls)
        finally:
            await runner.cleanup()

    asyncio.run(main())
    return calls


def test_fast_pings_are_the_normal_answer_without_the_handler_path(tmp_path: Path) -> None:
    async def body(sock: Path, calls: list[int]) -> None:
        started = len(calls)  # the fast path takes its answer from the handler once
        fast = await exchange(sock, *[request("GET", "/_ping")] * 3, request("GET", "/v1.44/_ping"))
        head = await exchange(sock, request("HEAD", "/_ping"))
        assert len(calls) == started, "pings went through the handler path"
        slow = await exchange(sock, request("GET", "/_ping?normal=1"))  # a query: the normal path
        slow_head = await exchange(sock, request("HEAD", "/_ping?normal=1"))
        assert len(calls) == started + 2
        assert {without_date(a) for a in fast} == {without_date(slow[0])}
        assert without_date(head[0]) == without_date(slow_head[0])
        assert fast[0].startswith(b"HTTP/1.1 200 OK\r\n") and fast[0].endswith(b"\r\n\r\nOK")
        for name in (b"Api-Version", b"Ostype", b"Server", b"Builder-Version", b"Swarm", b"Cache-Control", b"Date"):
            assert b"\r\n" + name + b": " in fast[0], name
        # a version the daemon does not speak is the normal path's 400
        old = await exchange(sock, request("GET", "/v1.10/_ping"))
        # pipelined requests (several in one read) take the normal path, in order
        both = await exchange(sock, request("GET", "/_ping") + request("GET", "/v1.10/_ping"))
        assert [a.split(b"\r\n", 1)[0] for a in both] == [b"HTTP/1.1 200 OK", b"HTTP/1.1 400 Bad Request"]
        assert old[0].startswith(b"HTTP/1.1 400 ")

    run(tmp_path, None, body)


def test_every_request_hook_runs_for_fast_pings(tmp_path: Path) -> None:
    hooks = Hooks()

    async def body(sock: Path, calls: list[int]) -> None:
        started = len(calls)
        ok = await exchange(sock, request("GET", "/_ping"), request("GET", "/v1.44/_ping"))
        denied = await exchange(sock, request("GET", "/_ping", "X-Test: deny"))
        assert len(calls) == started
        assert all(a.startswith(b"HTTP/1.1 200 OK") for a in ok)
        assert denied[0].startswith(b"HTTP/1.1 403 ") and b"no pings" in denied[0]
        assert b"Api-Version: " in denied[0]

    run(tmp_path, hooks, body)
    assert [s[:3] for s in hooks.seen] == [("GET", "/_ping", "/_ping"), ("GET", "/v1.44/_ping", "/_ping"),
                                           ("GET", "/_ping", "/_ping")]
    assert all(s[3].startswith("uid:") for s in hooks.seen)
    assert [f[:2] for f in hooks.finished] == [("/_ping", 200), ("/v1.44/_ping", 200), ("/_ping", 403)]


def test_an_async_hook_keeps_answers_in_order(tmp_path: Path) -> None:
    hooks = Hooks(slow=True)

    async def body(sock: Path, calls: list[int]) -> None:
        # a ping whose authorization waits; the next requests arrive before its answer (reading
        # is paused meanwhile, so they come in as one later read: the normal path)
        reader, writer = await asyncio.open_unix_connection(str(sock))
        writer.write(request("GET", "/_ping"))
        await writer.drain()
        await asyncio.sleep(0.001)
        writer.write(request("GET", "/_ping", "X-Test: deny") + request("GET", "/_ping?n=1"))
        answers = []
        for _ in range(3):
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"Content-Length: (\d+)", head).group(1))  # type: ignore[union-attr]
            answers.append(head + await reader.readexactly(length))
        writer.close()
        assert [a.split(b"\r\n", 1)[0] for a in answers] == [b"HTTP/1.1 200 OK", b"HTTP/1.1 403 Forbidden",
                                                             b"HTTP/1.1 200 OK"]
        # alone, a denied ping waits for its hook on the fast path too
        denied = await exchange(sock, request("GET", "/_ping", "X-Test: deny"))
        assert denied[0].startswith(b"HTTP/1.1 403 ")

    run(tmp_path, hooks, body)
    assert [f[:2] for f in hooks.finished] == [("/_ping", 200), ("/_ping", 403), ("/_ping", 200), ("/_ping", 403)]


def test_direct_hook_calls_answer_as_pluggy_does() -> None:
    from dockyard.api.middleware import HookCalls
    from dockyard.plugins import call_hook, first_answer

    class Answer:
        def __init__(self, value: Any) -> None:
            self.value = value

        @hookimpl
        def authorize_request(self, request: Any, identity: Any) -> Any:
            if self.value == "async":
                async def later() -> str:
                    return "later"
                return later()
            return self.value

    plugins = Plugins()
    for i, value in enumerate(["a", None, "async", "b"]):
        plugins.pm.register(Answer(value), name=f"p{i}")
    calls = HookCalls(plugins.hook.authorize_request)
    assert calls.calls is not None  # called directly

    async def compare() -> None:
        kw = {"request": object(), "identity": object()}
        assert await calls.all(**kw) == await call_hook(plugins.hook.authorize_request, **kw) == ["b", "later", "a"]
        assert await calls.first(**kw) == await first_answer(plugins.hook.authorize_request, **kw) == "b"
        plugins.pm.register(Answer("late"), name="late")  # registered after: not missed
        assert await calls.all(**kw) == ["late", "b", "later", "a"]

    asyncio.run(compare())


def test_an_access_log_sees_every_ping(tmp_path: Path) -> None:
    import logging

    async def body(sock: Path, calls: list[int]) -> None:
        started = len(calls)
        await exchange(sock, request("GET", "/_ping"), request("GET", "/_ping"))
        assert len(calls) == started + 2  # the normal path: the access log has them

    run(tmp_path, None, body, access_log=logging.getLogger("test.access"))


# -- GET /containers/json ----------------------------------------------------------------------

class Observed:
    """A request_observed plugin: not a request hook, the fast path calls it itself."""

    def __init__(self) -> None:
        self.seen: list[tuple[Any, str, int]] = []

    @hookimpl
    def request_observed(self, route: Any, method: str, status: int, duration: float) -> None:
        self.seen.append((route, method, status))


def list_daemon() -> Any:
    """A daemon with a container service of three containers whose rows do not move with the
    clock (created; running and exited for days)."""
    import time
    from types import SimpleNamespace

    from dockyard.containers.record import Container
    from dockyard.errors import NoSuchContainer

    days = time.time_ns() - 3 * 86400 * 10**9
    rows = {}
    for i, (status, extra) in enumerate([("created", {}), ("running", {"started_ns": days}),
                                         ("exited", {"has_been_started": True, "finished_ns": days, "exit_code": 3})]):
        c = Container(id=f"{i + 1:064x}", name=f"c{i}", image="busybox", image_id="sha256:" + "f" * 64,
                      config={"Cmd": ["sleep", "1"], "Labels": {"n": str(i)}}, host_config={"NetworkMode": "none"},
                      status=status, created_ns=days + i, networks={"none": {"IPAddress": ""}}, **extra)
        rows[c.id] = c

    def get(ref: str) -> Any:
        raise NoSuchContainer(ref)

    svc = SimpleNamespace(containers=rows, images=None, get=get,
                          health=SimpleNamespace(status_suffix=lambda c: ""))
    return SimpleNamespace(containers=svc)


def run_list(tmp: Path, hooks: Any, body: Any, *more_hooks: Any) -> Any:
    daemon = list_daemon()

    async def main() -> None:
        runner, sock = await serve(tmp, hooks, [], None, daemon, *more_hooks)
        fast = runner.server.fast  # type: ignore[union-attr]
        made: list[int] = []
        real = fast.list_bytes

        def counted(*args: Any, **kwargs: Any) -> bytes:
            out = real(*args, **kwargs)
            made.append(1)  # answered on the fast path (the handler calls queries.list_bytes)
            return out

        fast.list_bytes = counted
        try:
            await body(sock, made, daemon.containers)
        finally:
            await runner.cleanup()

    asyncio.run(main())


LISTS = ["/containers/json?all=1", "/v1.44/containers/json?all=1&limit=2", "/containers/json",
         "/containers/json?all=true&filters=%7B%22label%22%3A%5B%22n%3D2%22%5D%7D"]


def test_fast_lists_are_the_normal_answer_and_observed(tmp_path: Path) -> None:
    observed = Observed()

    async def body(sock: Path, made: list[int], svc: Any) -> None:
        fast = await exchange(sock, *[request("GET", path) for path in LISTS])
        assert len(made) == len(LISTS)
        # a list queued behind a request in progress (pipelined after a normal-path one) waits
        # its turn on the normal path
        slow = await exchange(sock, *[request("GET", "/_ping?n=1") + request("GET", path) for path in LISTS])
        assert len(made) == len(LISTS)
        assert [without_date(a) for a in fast] == [without_date(a) for a in slow[1::2]]
        import json
        ids = [[r["Id"][-1] for r in json.loads(a.partition(b"\r\n\r\n")[2])] for a in fast]
        assert ids == [["3", "2", "1"], ["3", "2"], ["2"], ["3"]]
        for name in (b"Content-Type: application/json", b"Api-Version", b"Ostype", b"Server", b"Date"):
            assert b"\r\n" + name in fast[0], name
        # a change is in the next list (the row's bytes are kept): a rename, an endpoint's address
        c = svc.containers["0" * 63 + "2"]
        c.name = "renamed"
        c.networks["none"]["IPAddress"] = "10.9.9.9"
        again = json.loads((await exchange(sock, request("GET", LISTS[0])))[0].partition(b"\r\n\r\n")[2])
        assert again[1]["Names"] == ["/renamed"]
        assert again[1]["NetworkSettings"]["Networks"]["none"]["IPAddress"] == "10.9.9.9"
        assert [r["Status"] for r in again] == ["Exited (3) 3 days ago", "Up 3 days", "Created"]
        # and what the Status text counts from (the row is kept with its text): a restart, an exit code
        import time
        c.started_ns = time.time_ns()
        svc.containers["0" * 63 + "3"].exit_code = 5
        again = json.loads((await exchange(sock, request("GET", LISTS[0])))[0].partition(b"\r\n\r\n")[2])
        assert [r["Status"] for r in again] == ["Exited (5) 3 days ago", "Up Less than a second", "Created"]
        # what the list refuses, the normal path answers (through handle_exception)
        made.clear()
        bad = await exchange(sock, request("GET", "/containers/json?filters=nojson"),
                             request("GET", "/containers/json?limit=x"), request("GET", "/v1.10/containers/json"),
                             request("GET", '/containers/json?filters={"before":["nosuch"]}'))
        assert [a.split(b"\r\n", 1)[0] for a in bad] == [b"HTTP/1.1 400 Bad Request"] * 3 + [b"HTTP/1.1 404 Not Found"]
        assert b"invalid filter" in bad[0] and b"invalid limit" in bad[1] and b"Api-Version: " in bad[0]
        assert made == []

    run_list(tmp_path, None, body, observed)
    lists = [s for s in observed.seen if s[0] == "/containers/json"]
    assert lists[:len(LISTS)] == [("/containers/json", "GET", 200)] * len(LISTS)
    assert ("/containers/json", "GET", 400) in lists and ("/containers/json", "GET", 404) in lists


def test_every_request_hook_runs_for_lists(tmp_path: Path) -> None:
    hooks = Hooks()

    async def body(sock: Path, made: list[int], svc: Any) -> None:
        ok = await exchange(sock, request("GET", "/containers/json"), request("GET", "/v1.44/containers/json?all=1"))
        denied = await exchange(sock, request("GET", "/containers/json", "X-Test: deny"))
        assert made == []  # with request hooks, lists take the normal path
        assert all(a.startswith(b"HTTP/1.1 200 OK") for a in ok)
        assert denied[0].startswith(b"HTTP/1.1 403 ") and b"no pings" in denied[0]

    run_list(tmp_path, hooks, body)
    assert [s[:3] for s in hooks.seen] == [("GET", "/containers/json", "/containers/json"),
                                           ("GET", "/v1.44/containers/json", "/containers/json"),
                                           ("GET", "/containers/json", "/containers/json")]
    assert [f[:2] for f in hooks.finished] == [("/containers/json", 200), ("/v1.44/containers/json", 200),
                                               ("/containers/json", 403)]
