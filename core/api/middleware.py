"""The one middleware: Docker's headers, API version checks, identity, authorization and
errors rendered through the ``handle_exception`` hook."""

from __future__ import annotations

import inspect
import json
import logging
import os
import socket
import struct
import time
from typing import Any, Awaitable, Callable

from ..http import web

from .. import API_VERSION, __version__
from ..containers.effective import REQUEST
from ..errors import DockyardError, Forbidden, NotFound, PayloadTooLarge
from ..identity import ANONYMOUS, Peer
from ..plugins import Plugins, call_hook, first_answer
from ..versions import check_version
from . import limits
from .util import json_response

log = logging.getLogger("dockyard.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

COMMON_HEADERS = {
    "Api-Version": API_VERSION,
    "Ostype": "linux",
    "Server": f"Dockyard/{__version__} (linux)",
    "Docker-Experimental": "false",
}


def peer_of(request: web.Request) -> Peer:
    """What the connection tells about the caller; SO_PEERCRED on Unix sockets. Kept on the
    connection (a kept-alive one asks once): uvloop makes a socket object per question."""
    protocol = request.protocol
    peer = getattr(protocol, "peer_info", None)
    if peer is None:
        peer = _peer_of(request)
        if hasattr(protocol, "peer_info"):
            protocol.peer_info = peer  # type: ignore[union-attr]
    return peer


def _peer_of(request: web.Request) -> Peer:
    transport = request.transport
    sock = transport.get_extra_info("socket") if transport else None
    if transport is not None and transport.get_extra_info("sslcontext") is not None:
        ssl_obj = transport.get_extra_info("ssl_object")
        cert = ssl_obj.getpeercert() if ssl_obj is not None else None
        return Peer("tls", address=str(transport.get_extra_info("peername")), cert=cert)
    if transport is not None and sock is not None and sock.family == socket.AF_UNIX:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        pid, uid, gid = struct.unpack("3i", creds)
        return Peer("unix", uid=uid, gid=gid, pid=pid, address=transport.get_extra_info("sockname"))
    peername = transport.get_extra_info("peername") if transport else None
    return Peer("tcp", address=str(peername))


def route_template(request: web.Request) -> str:
    info = request.match_info
    resource = info.route.resource if info.route is not None else None
    return resource.canonical if resource is not None else request.path


# What the authorization hooks see of a body. JSON bodies are read (at most the daemon's
# ``api-max-json-body``, see :mod:`dockyard.api.limits`) and parsed before the handler runs;
# binary uploads (tar streams) are left to the handler unread, marked ``body_unread`` so that
# ``json_body()`` refuses to act on a body no hook has seen.


async def _body_json(request: web.Request) -> Any:
    """The parsed JSON body for ``authorize_request`` (None when there is none).

    A body that is not JSON sets ``request["body_error"]``; a binary upload, or the raw
    stream of a hijacked request, sets ``request["body_unread"]``."""
    if not request.can_read_body:
        return None
    if limits.is_streamed(request):
        request["body_unread"] = True
        return None
    raw = await request.read()  # bounded by _limit_body()
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        request["body_error"] = f"invalid JSON: {exc}"
        return None


def _limit_body(request: web.Request) -> None:
    """Bound what ``request.read()`` takes of a JSON body (streamed uploads are not read
    whole); a ``Content-Length`` over the limit is refused before a byte of it is read."""
    limit = limits.body_limit(request)
    if not limit or not request.can_read_body or limits.is_streamed(request):
        return
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(limits.too_large_message(limit))
    request._client_max_size = limit  # request.read() raises HTTPRequestEntityTooLarge past it


class HookCalls:
    """One hook's implementations called directly, in pluggy's order (last registered first):
    pluggy's dispatch costs ~3 us a call, three times per request. Used when no
    implementation is a wrapper and tracing is off (``DOCKYARD_TRACE_HOOKS``); otherwise, and
    whenever the registrations changed since, the call goes through pluggy as before."""

    __slots__ = ("hook", "impls", "calls")

    def __init__(self, hook: Any) -> None:
        self.hook = hook
        self.impls = hook.get_hookimpls()
        direct = not os.environ.get("DOCKYARD_TRACE_HOOKS") and not any(
            getattr(i, "hookwrapper", False) or getattr(i, "wrapper", False) for i in self.impls)
        self.calls = tuple((i.function, tuple(i.argnames)) for i in reversed(self.impls)) if direct else None

    def __bool__(self) -> bool:
        return bool(self.impls)

    def _plan(self) -> Any:
        return self.calls if self.hook.get_hookimpls() == self.impls else None

    async def all(self, **kwargs: Any) -> list[Any]:
        """Every implementation's non-None answer, awaited (:func:`dockyard.plugins.call_hook`)."""
        calls = self._plan()
        if calls is None:
            return await call_hook(self.hook, **kwargs)
        results = []
        for function, argnames in calls:
            result = function(*[kwargs[a] for a in argnames])
            if result is not None:
                if inspect.isawaitable(result):
                    result = await result
                    if result is None:
                        continue
                results.append(result)
        return results

    async def first(self, **kwargs: Any) -> Any:
        """The first non-None answer (:func:`dockyard.plugins.first_answer`)."""
        calls = self._plan()
        if calls is None:
            return await first_answer(self.hook, **kwargs)
        for function, argnames in calls:
            result = function(*[kwargs[a] for a in argnames])
            if result is not None and inspect.isawaitable(result):
                result = await result
            if result is not None:
                return result
        return None


def observer(hook: Any) -> Callable[[str | None, str, int, float], None] | None:
    """One function calling every ``request_observed`` implementation (None when there is
    none), each directly as :class:`HookCalls` does; an exception is logged, never raised."""
    calls = HookCalls(hook)
    if not calls:
        return None
    plan = calls.calls

    def observe(route: str | None, method: str, status: int, duration: float) -> None:
        kwargs = {"route": route, "method": method, "status": status, "duration": duration}
        if plan is None:
            try:
                hook(**kwargs)
            except Exception:
                log.exception("request_observed hook failed")
            return
        for function, argnames in plan:
            try:
                function(*[kwargs[a] for a in argnames])
            except Exception:
                log.exception("request_observed hook %s failed", getattr(function, "__module__", function))

    return observe


def make_middleware(plugins: Plugins) -> Any:
    # The checks below run per request; hooks with no (active) implementation cost nothing.
    # Read again once plugins.settle() asked the modules which hooks are inactive for this
    # config (hookspecs.inactive_hooks), before the daemon listens.
    authenticate = authorize = finished = HookCalls(plugins.active("request_finished"))
    has_auth = has_authz = has_finished = False
    observe: Callable[[str | None, str, int, float], None] | None = None

    def configure() -> None:
        nonlocal authenticate, authorize, finished, has_auth, has_authz, has_finished, observe
        authenticate = HookCalls(plugins.active("authenticate_request"))
        authorize = HookCalls(plugins.active("authorize_request"))
        finished = HookCalls(plugins.active("request_finished"))
        has_auth, has_authz, has_finished = bool(authenticate), bool(authorize), bool(finished)
        observe = observer(plugins.active("request_observed"))
        # for the fast path (dockyard.api.fastpath): without these hooks it may skip the middleware;
        # it calls request_observed itself
        middleware.request_hooks = has_auth or has_authz or has_finished  # type: ignore[attr-defined]
        middleware.observe = observe  # type: ignore[attr-defined]

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not has_finished and observe is None:
            return await _handle(request, handler)
        started = time.monotonic()
        response = await _handle(request, handler)
        duration = time.monotonic() - started
        if has_finished:
            try:
                await finished.all(request=request, identity=request.get("identity", ANONYMOUS),
                                   response=response, duration=duration)
            except Exception:
                log.exception("request_finished hook failed")
        if observe is not None:
            info = request.match_info
            resource = info.route.resource if info.route is not None else None
            observe(resource.canonical if resource is not None else None, request.method, response.status, duration)
        return response

    async def _handle(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            request["api_version"] = check_version(request.get("api_version_raw"))
            request["route"] = route_template(request)
            if (refused := limits.over_cap_response(request)) is not None:
                refused.headers.update(COMMON_HEADERS)
                return refused
            _limit_body(request)
            identity = ANONYMOUS
            if has_auth:
                identity = await authenticate.first(request=request, peer=peer_of(request)) or ANONYMOUS
            request["identity"] = identity
            if has_authz:
                request["body_json"] = await _body_json(request)
                for decision in await authorize.all(request=request, identity=identity):
                    if not decision.allow:
                        request["denied_by"] = decision  # for audit hooks: the decision that counted
                        raise Forbidden(decision.message or "authorization denied by policy")
            token = REQUEST.set(request)  # for authorize_container (dockyard.containers.effective)
            try:
                response = await handler(request)
            finally:
                REQUEST.reset(token)
        except web.HTTPRequestEntityTooLarge:  # a JSON body past the limit, found while reading it
            response = await render_error(plugins, request, PayloadTooLarge(
                limits.too_large_message(request.client_max_size)))
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            response = await render_error(plugins, request, _from_http(exc))
        except Exception as exc:  # every error becomes a Docker-style response
            response = await render_error(plugins, request, exc)
        if not response.prepared:
            response.headers.update(COMMON_HEADERS)
        return response

    configure()
    plugins.on_settle.append(configure)
    return middleware


def _from_http(exc: web.HTTPException) -> DockyardError:
    if exc.status == 404:
        return NotFound("page not found")
    err = DockyardError(exc.reason)
    err.status = exc.status
    return err


async def render_error(plugins: Plugins, request: web.Request, exc: Exception) -> web.StreamResponse:
    response = await first_answer(plugins.hook.handle_exception, request=request, exception=exc)
    if response is None:  # the built-in renderer was blocked: still answer something sane
        response = json_response({"message": str(exc)}, status=getattr(exc, "status", 500))
    return response


def add_common_headers(response: web.StreamResponse) -> None:
    """For streaming handlers: set Docker's headers before ``prepare()``."""
    response.headers.update(COMMON_HEADERS)
