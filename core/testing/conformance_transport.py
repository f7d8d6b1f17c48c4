"""TransportSuite: behavioural tests every transport driver (``dockyard.transports``) runs.

A transport turns a ``-H`` URL into a listening site (:mod:`dockyard.http.web`). The suite serves a small app
through the driver and talks to it as a client would.

Subclass it and provide three fixtures:

* ``transport_factory``: a callable returning a new driver instance (one per "daemon run").
* ``listen_url``: a URL the driver serves, unique to the test (``unix:///tmp/.../api.sock``,
  ``tcp://127.0.0.1:PORT``...).
* ``daemon_config``: the :class:`dockyard.config.DaemonConfig` handed to ``site()`` (socket
  group, TLS files...).

and override :meth:`TransportSuite.connection` if a plain ``http.client`` connection does not
reach the URL (TLS: a client certificate). Class attributes:

* ``socket_file``: the driver makes a socket file at the URL's path (``unix``): its mode
  (``0660``), owner (root and the configured group), a stale file replaced, a live one
  refused, and removal at ``close()`` are checked.
* ``refused_urls``: URLs ``site()`` must refuse with ``ConfigError``, leaving nothing listening.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import http.client
import os
import socket
import stat
from pathlib import Path
from typing import Any, Callable, ClassVar
from urllib.parse import urlsplit

import pytest

from dockyard.errors import ConfigError


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 30) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.path)
        self.sock = s


def app() -> Any:
    """GET /ping -> "OK"; POST /echo -> the body; GET /peer -> what the server saw of the client."""
    from dockyard.http import web

    async def ping(request: web.Request) -> web.Response:
        return web.Response(text="OK")

    async def echo(request: web.Request) -> web.Response:
        return web.Response(body=await request.read(), content_type="application/octet-stream")

    async def stream(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        for i in range(int(request.query.get("n", "3"))):
            await resp.write(f"chunk{i}\n".encode())
        await resp.write_eof()
        return resp

    a = web.Application()
    a.router.add_get("/ping", ping)
    a.router.add_post("/echo", echo)
    a.router.add_get("/stream", stream)
    return a


class TransportSuite:
    socket_file: ClassVar[bool] = False
    refused_urls: ClassVar[list[str]] = []

    # -- how a client connects (override for TLS) ----------------------------------------------
    def connection(self, url: str, site: Any) -> http.client.HTTPConnection:
        """A client connection to what ``site`` (returned by the driver for ``url``) serves."""
        parts = urlsplit(url)
        if parts.scheme == "unix":
            return UnixHTTPConnection(parts.path)
        host, port = self.address(site)
        return http.client.HTTPConnection(host, port, timeout=30)

    @staticmethod
    def address(site: Any) -> tuple[str, int]:
        """(host, port) a TCP site really listens on (port 0 in a URL picks a free one)."""
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        for s in sockets:
            name = s.getsockname()
            if isinstance(name, tuple):
                return name[0], name[1]
        raise AssertionError(f"no TCP socket behind {site!r}")

    # -- running a server ----------------------------------------------------------------------
    @staticmethod
    async def _client(fn: Callable[[], Any]) -> Any:
        return await asyncio.to_thread(fn)

    def request(self, url: str, site: Any, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        conn = self.connection(url, site)
        try:
            conn.request(method, path, body=body)
            r = conn.getresponse()
            return r.status, r.read()
        finally:
            conn.close()

    def serve(self, transport_factory: Callable[[], Any], url: str, config: Any,
              client: Callable[[Any, Any], Any]) -> Any:
        """Start the driver's site for ``url``; call ``client(transport, site)`` in a thread
        while the loop serves; then clean up the runner and ``close()`` the driver. Returns
        ``client``'s result."""
        from dockyard.http import web

        async def main() -> Any:
            transport = transport_factory()
            runner = web.AppRunner(app())
            await runner.setup()
            try:
                site = await transport.site(runner, url, config)
                return await asyncio.to_thread(client, transport, site)
            finally:
                await runner.cleanup()
                await transport.close()

        return asyncio.run(main())

    # -- tests ------------------------------------------------------------------------------------
    def test_contract(self, transport_factory):
        """The Transport Protocol's methods are there (the daemon's load-time check)."""
        from dockyard.drivers import contracts

        drv = transport_factory()
        try:
            contracts.check("transport", type(drv).__name__, drv)
        finally:
            asyncio.run(drv.close())

    def test_serves_requests(self, transport_factory, listen_url, daemon_config):
        def client(transport, site):
            assert self.request(listen_url, site, "GET", "/ping") == (200, b"OK")
            payload = os.urandom(200_000)
            assert self.request(listen_url, site, "POST", "/echo", payload) == (200, payload)
            status, body = self.request(listen_url, site, "GET", "/stream?n=5")
            assert status == 200 and body == b"".join(f"chunk{i}\n".encode() for i in range(5))
            assert self.request(listen_url, site, "GET", "/nowhere")[0] == 404

        self.serve(transport_factory, listen_url, daemon_config, client)

    def test_keep_alive_and_concurrent_clients(self, transport_factory, listen_url, daemon_config):
        def client(transport, site):
            conn = self.connection(listen_url, site)
            try:
                for _ in range(3):  # one connection, several requests
                    conn.request("GET", "/ping")
                    r = conn.getresponse()
                    assert (r.status, r.read()) == (200, b"OK")
            finally:
                conn.close()
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(8) as pool:
                results = list(pool.map(lambda _: self.request(listen_url, site, "GET", "/ping"), range(16)))
            assert results == [(200, b"OK")] * 16

        self.serve(transport_factory, listen_url, daemon_config, client)

    def test_close_stops_listening_and_cleans_up(self, transport_factory, listen_url, daemon_config):
        seen: dict[str, Any] = {}

        def client(transport, site):
            assert self.request(listen_url, site, "GET", "/ping")[0] == 200
            seen["late"] = self.connection(listen_url, site)  # not connected yet: after close()

        self.serve(transport_factory, listen_url, daemon_config, client)
        late = seen["late"]
        try:
            with pytest.raises((OSError, http.client.HTTPException)):
                late.request("GET", "/ping")
                late.getresponse().read()
        finally:
            late.close()
        if self.socket_file:
            assert not os.path.exists(urlsplit(listen_url).path), "close() left the socket file"

    def test_close_is_idempotent_and_a_new_instance_serves_again(self, transport_factory, listen_url,
                                                                 daemon_config):
        def client(transport, site):
            return self.request(listen_url, site, "GET", "/ping")

        assert self.serve(transport_factory, listen_url, daemon_config, client) == (200, b"OK")
        asyncio.run(transport_factory().close())  # nothing to close: fine
        assert self.serve(transport_factory, listen_url, daemon_config, client) == (200, b"OK")  # a restart

    def test_refused_urls_leave_nothing(self, transport_factory, daemon_config):
        if not self.refused_urls:
            pytest.skip("no URL this transport must refuse")
        from dockyard.http import web

        async def main(url: str) -> None:
            transport = transport_factory()
            runner = web.AppRunner(app())
            await runner.setup()
            try:
                with pytest.raises(ConfigError):
                    await transport.site(runner, url, daemon_config)
                assert runner.sites == set() or not [s for s in runner.sites], "a refused URL left a site"
            finally:
                await runner.cleanup()
                await transport.close()

        for url in self.refused_urls:
            asyncio.run(main(url))

    # -- socket files ---------------------------------------------------------------------------
    def _needs_file(self) -> None:
        if not self.socket_file:
            pytest.skip("this transport makes no socket file")

    def test_socket_file_permissions(self, transport_factory, listen_url, daemon_config):
        """0660, owned by root (uid 0) and the configured group: only they reach the daemon."""
        self._needs_file()
        path = urlsplit(listen_url).path

        def client(transport, site):
            st = os.stat(path)
            assert stat.S_ISSOCK(st.st_mode)
            assert stat.S_IMODE(st.st_mode) == 0o660, oct(st.st_mode)
            if os.geteuid() == 0:
                assert st.st_uid == 0
                group = getattr(daemon_config, "group", None)
                if group is not None:
                    gid = int(group) if str(group).isdigit() else grp.getgrnam(group).gr_gid
                    assert st.st_gid == gid

        self.serve(transport_factory, listen_url, daemon_config, client)

    def test_stale_socket_file_is_replaced(self, transport_factory, listen_url, daemon_config):
        """A file left by a killed daemon (nobody listening) does not stop the next start."""
        self._needs_file()
        path = urlsplit(listen_url).path
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.bind(path)  # bound, never listening, then closed: a stale socket file
        assert os.path.exists(path)

        def client(transport, site):
            return self.request(listen_url, site, "GET", "/ping")

        assert self.serve(transport_factory, listen_url, daemon_config, client) == (200, b"OK")

    def test_live_socket_is_refused_and_kept(self, transport_factory, listen_url, daemon_config):
        """A second daemon on the same path is a ConfigError; the first one keeps its socket,
        and the second's close() never removes the first's file."""
        self._needs_file()
        path = urlsplit(listen_url).path
        from dockyard.http import web

        def client(transport, site):
            async def second() -> None:
                other = transport_factory()
                runner = web.AppRunner(app())
                await runner.setup()
                try:
                    with pytest.raises(ConfigError):
                        await other.site(runner, listen_url, daemon_config)
                finally:
                    await runner.cleanup()
                    await other.close()

            asyncio.run(second())
            assert os.path.exists(path)
            return self.request(listen_url, site, "GET", "/ping")

        assert self.serve(transport_factory, listen_url, daemon_config, client) == (200, b"OK")

    def test_close_spares_a_newer_daemons_socket(self, transport_factory, listen_url, daemon_config):
        """The path was taken over (an old daemon's close runs after a new one bound it): the
        old driver must not unlink the new socket."""
        self._needs_file()
        path = urlsplit(listen_url).path
        newer = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            def client(transport, site):
                os.unlink(path)
                newer.bind(path)
                newer.listen(1)

            self.serve(transport_factory, listen_url, daemon_config, client)
            assert os.path.exists(path), "close() removed a socket it did not make"
        finally:
            newer.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
