"""Swarm and Docker's managed plugins, which this engine does not run.

The answers are the ones a dockerd with swarm inactive and no managed plugins gives, so
clients that probe (``docker node ls``, docker-py ``client.plugins.list()``) behave as they do
there; joining or creating a swarm, and installing a managed plugin, are refused plainly
(drivers here are Python distributions installed with pip, see the README).
"""

from __future__ import annotations

from ..http import web

from ..errors import NotFound, NotSupported, Unavailable
from .util import json_response

routes = web.RouteTableDef()

NOT_A_MANAGER = ('This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect '
                 'this node to swarm and try again.')
SWARM_RESOURCES = ("nodes", "services", "tasks", "secrets", "configs")


async def not_a_manager(request: web.Request) -> web.Response:
    raise Unavailable(NOT_A_MANAGER)


for _resource in SWARM_RESOURCES:
    for _method in ("GET", "POST", "DELETE"):
        routes.route(_method, f"/{_resource}")(not_a_manager)
        routes.route(_method, f"/{_resource}/{{tail:.+}}")(not_a_manager)
routes.get("/swarm")(not_a_manager)
routes.get("/swarm/unlockkey")(not_a_manager)
routes.post("/swarm/update")(not_a_manager)
routes.post("/swarm/unlock")(not_a_manager)


@routes.post("/swarm/leave")
async def swarm_leave(request: web.Request) -> web.Response:
    raise Unavailable("This node is not part of a swarm")


@routes.post("/swarm/init")
@routes.post("/swarm/join")
async def swarm_join(request: web.Request) -> web.Response:
    raise NotSupported("swarm mode is not supported by this engine")


@routes.get("/plugins")
async def plugin_list(request: web.Request) -> web.Response:
    return json_response([])


@routes.get("/plugins/privileges")
@routes.post("/plugins/pull")
@routes.post("/plugins/create")
async def plugin_install(request: web.Request) -> web.Response:
    raise NotSupported("managed plugins are not supported by this engine: its drivers and hooks are Python "
                       "distributions installed with pip")


@routes.get("/plugins/{name:.+}/json")
@routes.delete("/plugins/{name:.+}")
@routes.post("/plugins/{name:.+}/{action:enable|disable|upgrade|push|set}")
async def plugin_by_name(request: web.Request) -> web.Response:
    raise NotFound(f'plugin "{request.match_info["name"]}" not found')
