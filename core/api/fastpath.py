"""A fast path for ``GET``/``HEAD /_ping`` (issue 18: request overhead).

Docker clients ping before almost every command and health checkers ping in a loop. The
full request path (a task per request, request and response objects, the router, the
middleware chain, the header writer) costs tens of us of CPU for a bare handler; the ping itself
is constant. So the connection (:class:`dockyard.http.server.HttpProtocol`) asks the fast path
first: a message that llhttp (httptools: nothing here parses HTTP) reports as a complete ``GET``
or ``HEAD`` of ``/_ping`` or ``/vX.Y/_ping`` (a supported version), HTTP/1.1, keep-alive,
without a body, ``Upgrade`` or ``Expect``, arriving on an idle connection (no request running
or queued, its writes not paused) that is not over its peer's cap, is answered right there,
before a Request exists. Anything else goes the normal way.

Guarantees kept:

* Without active ``authenticate_request``, ``authorize_request`` and ``request_finished``
  implementations (``inactive_hooks`` may have taken a module's off the request path), the
  middleware would do nothing but add headers to the handler's response and call
  ``request_observed``: the answer is those bytes, made once from the real handler's response
  and the middleware's headers (``Date`` per second, as the server's), and ``request_observed`` is
  called here with the ping's route, method and status.
* With any of them implemented, a real ``dockyard.http.web.Request`` is made (the
  connection's, with the route's match info) and the real middleware runs on it around the ping handler, so every
  hook sees what it sees on the normal path. The middleware coroutine is stepped in place;
  when a hook really waits (an async implementation), it finishes in a task while the
  connection's turn (requests after it wait in its queue), so responses stay in order.
* Error answers (a denial, a failing hook) are written by the server's own response writer.

``GET /containers/json`` (with any query, ``/vX.Y`` or not) is answered the same way when no
request hook is implemented (``docker ps`` and compose poll it): the list handler's own code
makes the body (:func:`dockyard.containers.queries.list_bytes`), the headers are the handler's
and the middleware's, and ``request_observed`` is called with the list's route. A list that
raises (a bad filter, an unknown ``before``) is left to the normal path, which answers it again
and renders the error through the ``handle_exception`` hook. With request hooks implemented,
the list always takes the normal path.

The fast path turns itself off when the app has other middlewares or ``on_response_prepare``
handlers, which it would skip.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable

from ..http import web
from ..versions import check_version, split_version
from .middleware import COMMON_HEADERS
from .util import DAEMON

log = logging.getLogger("dockyard.api")

PING = "/_ping"
LIST = "/containers/json"
MAX_VERSIONED = 64  # "/vX.Y/_ping" paths remembered as valid (clients use one or two)


def _drive(coro: Any) -> tuple[bool, Any]:
    """Step ``coro`` once: ``(True, result)`` when it finished without waiting, else
    ``(False, what it waits on)`` (resume it with :func:`_finish`)."""
    try:
        return False, coro.send(None)
    except StopIteration as stop:
        return True, stop.value


async def _finish(coro: Any, waiting: Any) -> Any:
    """Run a coroutine that :func:`_drive` left waiting on ``waiting`` to its end, as a task
    would: wait for what it yielded, then resume it (it reads the result itself)."""
    while True:
        try:
            if waiting is None:
                await asyncio.sleep(0)
            else:
                waiting._asyncio_future_blocking = False  # as Task.__step does with what it gets
                await waiting
        except asyncio.CancelledError:
            if asyncio.current_task().cancelling():  # type: ignore[union-attr]
                coro.close()
                raise
        except BaseException:  # noqa: S110 - the coroutine gets it from the future itself
            pass
        done, waiting = _drive(coro)
        if done:
            return waiting


class FastPath:
    """What the fast path answers with, built once per app (see the module docstring)."""

    def __init__(self, app: web.Application, middleware: Any, hooked: bool, handler: Callable[..., Any]) -> None:
        self.app = app
        self.middleware = middleware
        self.hooked = hooked  # some request hook is implemented: run the middleware
        self.observe = getattr(middleware, "observe", None)  # request_observed: called here when not hooked
        self.handler = handler
        # "/v1.44/_ping" -> "1.44", per route, for valid versions only
        self.versions: dict[str, dict[str, str]] = {PING: {}, LIST: {}}
        # the ping handler's response, with the middleware's headers: ping ignores its request
        done, response = _drive(handler(None))
        assert done, "the ping handler must not wait"
        response.headers.update(COMMON_HEADERS)
        self.response = response
        self.routes = {m: self._route(m) for m in ("GET", "HEAD")}
        head = f"HTTP/1.1 {response.status} {response.reason}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in response.headers.items())
        head += f"Content-Length: {len(response.body)}\r\n"
        self.heads = {"GET": head.encode("latin-1"), "HEAD": head.encode("latin-1")}
        self.bodies = {"GET": bytes(response.body), "HEAD": b""}
        self._second = -1
        self._answers: dict[str, bytes] = {}
        self._date = b""
        self.list_route = self._list_route()
        self.list_head = ("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                          + "".join(f"{k}: {v}\r\n" for k, v in COMMON_HEADERS.items())).encode("latin-1")

    def _route(self, method: str) -> Any:
        info = web.UrlDispatcher.lookup(self.app.router, method, PING)  # the plain router's: no prefix
        resource = info.route.resource if info.route is not None else None
        assert resource is not None and resource.canonical == PING, info
        return info.route

    def _list_route(self) -> Any:
        """The route ``GET /containers/json`` resolves to, when it is the list handler's (a
        plugin's route cannot take it over unseen); else None: no fast list."""
        from ..containers.queries import list_bytes
        from . import containers

        self.list_bytes, self.list_args = list_bytes, containers.list_args
        info = web.UrlDispatcher.lookup(self.app.router, "GET", LIST)
        route = info.route
        if route is None or route.resource is None or route.resource.canonical != LIST:
            return None
        return route if route.handler is containers.list_ else None

    @classmethod
    def usable(cls, app: web.Application, middleware: Any) -> bool:
        """Only when our middleware is the app's one and nothing hooks response preparation."""
        return list(app.middlewares) == [middleware] and not app.on_response_prepare and not app._subapps

    def answer(self, method: str) -> bytes:
        """The whole response without hooks (Date per second, as the server's responses)."""
        now = int(time.time())
        if now != self._second:
            date = self._date = web.http_date().encode()
            self._answers = {m: self.heads[m] + b"Date: " + date + b"\r\n\r\n" + self.bodies[m]
                             for m in self.heads}
            self._second = now
        return self._answers[method]

    def date(self) -> bytes:
        if int(time.time()) != self._second:
            self.answer("GET")
        return self._date

    def version_of(self, path: str, route: str = PING) -> str | None | bool:
        """None for ``route`` itself (``/_ping`` or ``/containers/json``), the version of a
        valid ``/vX.Y`` + ``route``, False otherwise (the path without its query)."""
        if path == route:
            return None
        cache = self.versions[route]
        version = cache.get(path)
        if version is not None:
            return version
        if not path.endswith(route):
            return False
        v, rest = split_version(path)
        if v is None or rest != route:
            return False
        try:
            check_version(v)
        except Exception:  # the normal path answers it (400)
            return False
        if len(cache) < MAX_VERSIONED:
            cache[path] = v
        return v

    # -- serving -------------------------------------------------------------------------

    def serve(self, proto: Any, method: str, target: str) -> bool:
        """Answer the bodiless plain ``method target`` the connection ``proto`` just read (it
        checked the message and that it is idle); False leaves it to the normal path."""
        path, _, query = target.partition("?")
        version = self.version_of(path) if not query else False
        if version is False:
            return method == "GET" and self.list_route is not None and self.serve_list(proto, path, query)
        if not self.hooked:
            observe = self.observe
            if observe is None:
                proto.transport.write(self.answer(method))
                proto.fast_answered()
                return True
            started = time.monotonic()
            proto.transport.write(self.answer(method))
            proto.fast_answered()
            observe(PING, method, self.response.status, time.monotonic() - started)
            return True
        request = proto.build_request()
        info = web.UrlMappingMatchInfo({}, self.routes[method])
        info.add_app(self.app)
        info.freeze()
        request._match_info = info
        request["api_version_raw"] = version
        responses: list[Any] = []

        async def handler(req: web.Request) -> web.StreamResponse:
            responses.append(self.response)
            return self.response

        coro = self.middleware(request, handler)
        try:
            done, result = _drive(coro)
        except Exception:
            log.exception("fast path failed for %s %s", method, target)
            proto.force_close()
            return True
        if done and responses and result is self.response:
            proto.transport.write(self.answer(method))
            proto.fast_answered()
            return True
        # a hook waits, or the answer is not the ping (a denial, an error): the connection
        # finishes it in its turn (requests after it wait), as any request
        proto.start(request, lambda: self._slow(request, method, coro, done, result))
        return True

    def serve_list(self, proto: Any, path: str, query: str) -> bool:
        """``GET /containers/json`` without request hooks (see the module docstring)."""
        if self.hooked or self.version_of(path, LIST) is False:
            return False
        svc = getattr(self.app[DAEMON], "containers", None)
        if svc is None:
            return False
        started = time.monotonic()
        try:
            body = self.list_bytes(svc, **self.list_args(_query(query)))
        except Exception:  # the normal path answers it, errors through handle_exception
            return False
        proto.server.requests_count += 1  # work for the memory janitor (dockyard.api.janitor)
        proto.transport.write(b"".join((self.list_head, b"Content-Length: %d\r\nDate: " % len(body), self.date(),
                                         b"\r\n\r\n", body)))
        proto.fast_answered()
        if self.observe is not None:
            self.observe(LIST, "GET", 200, time.monotonic() - started)
        return True

    async def _slow(self, request: web.Request, method: str, coro: Any, done: bool, result: Any) -> Any:
        """The rest of a hooked ping: None when the ping's own bytes were written, else the
        response (a denial, an error) for the connection to send."""
        response = result if done else await _finish(coro, result)
        if response is self.response:
            request.protocol.send(self.answer(method))
            return None
        return response


_EMPTY_QUERY = web.MultiDict()


def _query(query: str) -> web.MultiDict:
    if not query:
        return _EMPTY_QUERY
    return web.RelURL("", "", query).query
