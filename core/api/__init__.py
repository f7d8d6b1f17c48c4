"""The HTTP API: an app factory, one route table per resource, one middleware."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

from ..http import web

from ..plugins import call_hook
from . import archive, containers, images, system
from . import exec as exec_
from . import volumes
from . import build
from . import registry
from . import networks
from . import swarm
from .fastpath import FastPath
from .limits import FAST_PATH
from .middleware import make_middleware
from .router import VersionedRouter
from .util import DAEMON

if TYPE_CHECKING:
    from ..daemon import Daemon

# One route table per resource.
ROUTE_TABLES: list[Iterable[web.AbstractRouteDef]] = [system.routes, images.routes, containers.routes, archive.routes,
                                                     exec_.routes,
                                                     volumes.routes, build.routes, registry.routes, networks.routes,
                                                     swarm.routes]


async def make_app(daemon: "Daemon") -> web.Application:
    middleware = make_middleware(daemon.plugins)
    app = web.Application(
        router=VersionedRouter(),  # resolves /vX.Y prefixes once
        middlewares=[middleware],
        client_max_size=0,  # image loads and archives stream large bodies
    )
    app[DAEMON] = daemon
    app[FAST_PATH] = lambda: FastPath(app, middleware, middleware.request_hooks, system.ping)
    for table in ROUTE_TABLES:
        app.add_routes(table)
    for extra in await call_hook(daemon.plugins.hook.register_routes, daemon=daemon):
        app.add_routes(extra)
    return app
