"""``inactive_hooks`` (core/hookspecs.py): a module's request hooks with nothing to do under the
daemon's config leave the request path once, at start; a module that may deny keeps them all;
an identity provider stays while another module's hook consumes identities.

And ``request_observed``: called for every request, pings answered by the fast path included.

In-process: the real middleware, router, fast path and connection handler on a Unix socket.
"""

from __future__ import annotations

import asyncio
import os
import re
import warnings
from pathlib import Path
from typing import Any

import pytest
from dockyard.http import web

from dockyard import hookimpl
from dockyard.api import system
from dockyard.api.fastpath import FastPath
from dockyard.api.limits import FAST_PATH, LimitedAppRunner, Limits
from dockyard.api.middleware import make_middleware
from dockyard.api.router import VersionedRouter
from dockyard.builtin import error_renderer
from dockyard.errors import PluginError
from dockyard.identity import Decision, Identity
from dockyard.plugins import Plugins


class Recorder:
    """Every request hook, recording its calls; ``inactive`` is what it declares."""

    def __init__(self, inactive: Any = None, deny: bool = False) -> None:
        self.inactive = inactive
        self.deny = deny
        self.calls: list[tuple[str, str]] = []
        self.identities: list[str] = []

    @hookimpl
    def inactive_hooks(self, daemon: Any) -> Any:
        return self.inactive

    @hookimpl
    def authenticate_request(self, request: Any, peer: Any) -> Identity:
        self.calls.append(("authenticate_request", request.path))
        return Identity(name=f"uid:{peer.uid}", kind="unix", uid=peer.uid)

    @hookimpl
    def authorize_request(self, request: Any, identity: Identity) -> Any:
        self.calls.append(("authorize_request", request.path))
        self.identities.append(identity.name)
        return Decision(allow=False, message="denied by the test") if self.deny else None

    @hookimpl
    def request_finished(self, request: Any, identity: Any, response: Any, duration: float) -> None:
        self.calls.append(("request_finished", request.path))


class Consumer:
    """Another module's authorization: it needs the identity someone else provides."""

    def __init__(self) -> None:
        self.identities: list[str] = []

    @hookimpl
    def authorize_request(self, request: Any, identity: Identity) -> None:
        self.identities.append(identity.name)


class Counter:
    def __init__(self) -> None:
        self.observed: list[tuple[Any, str, int]] = []

    @hookimpl
    def request_observed(self, route: Any, method: str, status: int, duration: float) -> None:
        assert duration >= 0
        self.observed.append((route, method, status))


async def serve(tmp: Path, modules: list[Any], calls: list[int]) -> tuple[LimitedAppRunner, Path]:
    plugins = Plugins()
    plugins.pm.register(error_renderer, name="builtin_errors")
    for i, module in enumerate(modules):
        plugins.pm.register(module, name=f"test_{i}")
    middleware = make_middleware(plugins)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        app = web.Application(router=VersionedRouter(), middlewares=[middleware])

    async def ping(request: Any) -> web.Response:  # the real handler, counted
        calls.append(1)
        return await system.ping(request)

    async def other(request: Any) -> web.Response:
        return web.json_response({})

    app.router.add_get("/_ping", ping)
    app.router.add_get("/other", other)
    app[FAST_PATH] = lambda: FastPath(app, middleware, middleware.request_hooks, ping)
    plugins.settle(daemon=None)  # as Daemon.start does after the startup hooks
    runner = LimitedAppRunner(app, limits=Limits(), access_log=None, handle_signals=False)
    await runner.setup()
    sock = tmp / "api.sock"
    await web.UnixSite(runner, str(sock)).start()
    return runner, sock


async def exchange(sock: Path, *paths: str) -> list[bytes]:
    """GET each path in turn on one kept-alive connection; the answers' status lines."""
    reader, writer = await asyncio.open_unix_connection(str(sock))
    out = []
    for path in paths:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: docker\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(re.search(rb"Content-Length: (\d+)", head).group(1))  # type: ignore[union-attr]
        await reader.readexactly(length)
        out.append(head.split(b"\r\n", 1)[0])
    writer.close()
    return out


def run(tmp: Path, modules: list[Any], *paths: str) -> tuple[list[bytes], int]:
    calls: list[int] = []

    async def main() -> tuple[list[bytes], int]:
        runner, sock = await serve(tmp, modules, calls)
        started = len(calls)  # the fast path takes its answer from the handler once
        try:
            return await exchange(sock, *paths), len(calls) - started
        finally:
            await runner.cleanup()

    return asyncio.run(main())


ALL = ["authenticate_request", "authorize_request", "authorize_container", "request_finished"]
OK = b"HTTP/1.1 200 OK"


def test_hook_inactive_hooks(tmp_path: Path) -> None:
    """Request hooks a module names inactive are never called; pings skip the handler."""
    module, counter = Recorder(inactive=ALL), Counter()
    answers, handler_calls = run(tmp_path, [module, counter], "/_ping", "/v1.44/_ping", "/other", "/_ping")
    assert answers == [OK] * 4
    assert module.calls == []
    assert handler_calls == 0  # every ping answered by the fast path, none through the handler path
    # request_observed still sees every request, the fast path's pings too
    assert counter.observed == [("/_ping", "GET", 200), ("/_ping", "GET", 200), ("/other", "GET", 200),
                                ("/_ping", "GET", 200)]


def test_hook_request_observed(tmp_path: Path) -> None:
    """Every request is observed once with its route template, method and status: fast-path
    pings, versioned pings, routed requests and a path no route matches (route None)."""
    counter = Counter()
    calls: list[int] = []

    async def main() -> list[bytes]:
        runner, sock = await serve(tmp_path, [counter], calls)
        try:
            return await exchange(sock, "/_ping", "/v1.44/_ping", "/other", "/nosuch/route")
        finally:
            await runner.cleanup()

    answers = asyncio.run(main())
    assert answers[:3] == [OK] * 3 and answers[3].startswith(b"HTTP/1.1 404")
    assert counter.observed == [("/_ping", "GET", 200), ("/_ping", "GET", 200), ("/other", "GET", 200),
                                (None, "GET", 404)]


def test_a_module_that_stays_active_sees_every_ping_and_its_denial_holds(tmp_path: Path) -> None:
    module = Recorder(inactive=None, deny=True)
    answers, handler_calls = run(tmp_path, [module], "/_ping", "/v1.44/_ping", "/other")
    assert answers == [b"HTTP/1.1 403 Forbidden"] * 3
    assert handler_calls == 0
    names = [c[0] for c in module.calls]
    assert names.count("authenticate_request") == 3
    assert names.count("authorize_request") == 3
    assert names.count("request_finished") == 3


def test_an_identity_provider_stays_while_another_module_consumes_identities(tmp_path: Path) -> None:
    provider, consumer = Recorder(inactive=ALL), Consumer()
    answers, _ = run(tmp_path, [provider, consumer], "/_ping", "/other")
    assert answers == [OK] * 2
    uid = f"uid:{os.getuid()}"
    assert consumer.identities == [uid, uid]  # the provider's answer, not anonymous
    # its own authorization and audit stay off the path
    assert [c[0] for c in provider.calls] == ["authenticate_request"] * 2


def test_only_request_hooks_can_be_inactive() -> None:
    plugins = Plugins()
    plugins.pm.register(Recorder(inactive=["startup"]), name="bad")
    with pytest.raises(PluginError, match="startup"):
        plugins.settle(daemon=None)


def test_auth_tls_declares_its_hooks_inactive_only_without_a_policy(tmp_path: Path) -> None:
    hooks = pytest.importorskip("dockyard_auth_tls.hooks")
    try:
        hooks.configure({})
        assert sorted(hooks.inactive_hooks(daemon=None)) == sorted(ALL)
        hooks.configure({"audit_log": str(tmp_path / "audit.log")})  # its audit needs every request
        assert hooks.inactive_hooks(daemon=None) == ["authorize_container"]
        policy = tmp_path / "policy.toml"
        policy.write_text('[[rule]]\nname = "someone-else"\ncn = "someone-else"\naction = "allow"\n')
        hooks.configure({"policy": str(policy)})
        assert hooks.inactive_hooks(daemon=None) is None
    finally:
        hooks.STATE.close()


def test_auth_tls_with_a_policy_still_denies_every_ping(tmp_path: Path) -> None:
    """The real module: a policy allowing only another principal denies this uid's pings and
    requests, on the fast path too."""
    hooks = pytest.importorskip("dockyard_auth_tls.hooks")
    policy = tmp_path / "policy.toml"
    policy.write_text('[[rule]]\nname = "someone-else"\ncn = "someone-else"\naction = "allow"\n')
    try:
        hooks.configure({"policy": str(policy)})
        answers, handler_calls = run(tmp_path, [hooks], "/_ping", "/v1.44/_ping", "/other")
        assert answers == [b"HTTP/1.1 403 Forbidden"] * 3
        assert handler_calls == 0
        hooks.configure({})  # no policy: nothing denies, nothing is called
        answers, _ = run(tmp_path, [hooks], "/_ping", "/other")
        assert answers == [OK] * 2
    finally:
        hooks.STATE.close()
