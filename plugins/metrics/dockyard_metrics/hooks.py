"""The hooks: ``GET /metrics`` on the API (``register_routes``), requests (``request_observed``),
events (``on_event``), and dockerd's ``metrics-addr`` listener (``startup``/``shutdown``).

One daemon per process: the metrics live in this module from ``register_routes`` (the first
hook the daemon calls) until ``shutdown``. The HTTP layer and prometheus-client are imported by the
hooks, not by the module: the CLI imports every hook module to find plugin commands.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import TYPE_CHECKING, Any

from dockyard.hookspecs import hookimpl

if TYPE_CHECKING:
    from dockyard.http import web

    from .metrics import Metrics

log = logging.getLogger("dockyard.metrics")

_metrics: Metrics | None = None
_runner: web.AppRunner | None = None


def _get(daemon: Any) -> Metrics:
    global _metrics
    if _metrics is None or _metrics.daemon is not daemon:
        from .metrics import Metrics

        _metrics = Metrics(daemon)
    return _metrics


async def _serve(request: web.Request) -> web.Response:
    from dockyard.http import web
    from prometheus_client import CONTENT_TYPE_LATEST

    if _metrics is None:
        raise web.HTTPServiceUnavailable(text="metrics are not initialised")
    return web.Response(body=_metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})


def metrics_addr(daemon: Any) -> str | None:
    """dockerd's ``metrics-addr`` (a core config key), or ``[plugins.metrics] metrics-addr``."""
    addr = getattr(daemon.config, "metrics_addr", None)
    if not addr:
        addr = daemon.config.plugin_config("metrics").get("metrics-addr")
    return addr or None


def parse_addr(addr: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT`` (dockerd's form); an empty host means every address."""
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"metrics-addr {addr!r}: expected HOST:PORT")
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@hookimpl
def register_routes(daemon: Any) -> Any:
    from dockyard.http import web

    _get(daemon)
    return [web.get("/metrics", _serve)]


@hookimpl
def request_observed(route: str | None, method: str, status: int, duration: float) -> None:
    """Plain values, not ``request_finished``: a ``/_ping`` answered by the fast path is counted
    without a request object being built for it."""
    if _metrics is not None:
        _metrics.observe(route, method, status, duration)


@hookimpl
def on_event(event: Any) -> None:
    if _metrics is not None:
        _metrics.on_event(event)


@hookimpl
async def startup(daemon: Any) -> None:
    """Serve ``GET /metrics`` on ``metrics-addr`` too, when it is set. As dockerd, any address
    is accepted; one that is not loopback gets a warning (the metrics are unauthenticated)."""
    global _runner
    _get(daemon)
    addr = metrics_addr(daemon)
    if addr is None:
        return
    try:
        host, port = parse_addr(addr)
    except ValueError as exc:
        from dockyard.errors import ConfigError

        raise ConfigError(str(exc)) from None
    if not is_loopback(host):
        log.warning("metrics-addr %s is not a loopback address: anyone who can reach it reads the "
                    "metrics without authentication", addr)
    from dockyard.http import web

    app = web.Application()
    app.router.add_get("/metrics", _serve)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, host or None, port).start()
    except OSError:
        await runner.cleanup()
        raise
    _runner = runner
    log.info("metrics listening on http://%s/metrics", addr)


@hookimpl
async def shutdown(daemon: Any) -> None:
    global _runner, _metrics
    if _runner is not None:
        runner, _runner = _runner, None
        await runner.cleanup()
    _metrics = None
