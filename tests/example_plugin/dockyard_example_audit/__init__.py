"""An example third-party plugin, written the way any Dockyard plugin is written.

It is inert unless ``DOCKYARD_EXAMPLE_AUDIT`` names a file in the daemon's environment:
then it appends every event and every request's identity there, adds ``GET /example/hello``,
denies requests that carry ``X-Example-Deny``, labels every new container, and adds a
``dockyard example-hello`` CLI command.
"""

from __future__ import annotations

import json
import os

from dockyard.http import web

from dockyard import hookimpl
from dockyard.identity import Decision, Identity

if os.environ.get("DOCKYARD_EXAMPLE_BREAK"):  # lets the tests prove that a broken plugin stops the daemon
    raise ImportError("example plugin broken on purpose")


def _log_path() -> str | None:
    return os.environ.get("DOCKYARD_EXAMPLE_AUDIT")


def _write(record: dict) -> None:
    path = _log_path()
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(record) + "\n")


@hookimpl
def startup(daemon):
    _write({"hook": "startup", "data_root": str(daemon.config.data_root)})


@hookimpl
async def shutdown(daemon):
    _write({"hook": "shutdown"})


@hookimpl
def on_event(event):
    _write({"hook": "on_event", "event": event.to_json()})


@hookimpl
def register_routes(daemon):
    if not _log_path():
        return None
    routes = web.RouteTableDef()

    @routes.get("/example/hello")
    async def hello(request):
        identity = request["identity"]
        return web.json_response({"hello": identity.name, "uid": identity.uid})

    return [*routes, *_legacy_routes()]


def _legacy_routes():
    """A route as a plugin written against aiohttp.web makes it (before ``dockyard.http``):
    its RouteDef still registers, the handler gets the daemon's Request, and the aiohttp
    response it returns (or HTTP exception it raises) is answered as the daemon's own. New
    plugins use ``dockyard.http.web`` (above); a streaming handler must."""
    from aiohttp import web as aioweb

    async def legacy(request):
        if "conflict" in request.query:
            raise aioweb.HTTPConflict(text="legacy conflict")
        return aioweb.json_response({"legacy": request["identity"].name, "route": request["route"]})

    return [aioweb.get("/example/legacy", legacy)]


@hookimpl
async def authenticate_request(request, peer):
    if not _log_path() or peer.transport != "unix":
        return None
    return Identity(name=f"uid:{peer.uid}", kind="unix", uid=peer.uid, gid=peer.gid, pid=peer.pid)


@hookimpl
def authorize_request(request, identity):
    if not _log_path():
        return None
    if "X-Example-Deny" in request.headers:
        _write({"hook": "authorize_request", "denied": request["route"], "who": identity.name})
        return Decision.deny(f"example policy: {request.headers['X-Example-Deny']}", rule="x-example-deny")
    return None


@hookimpl
def handle_exception(request, exception):
    if _log_path() and request.headers.get("X-Example-Teapot"):
        return web.json_response({"message": f"teapot: {exception}"}, status=418)
    return None


@hookimpl
def container_spec(config, host_config, name):
    if _log_path():
        config.setdefault("Labels", {})
        config["Labels"] = dict(config["Labels"] or {}, **{"example.audit": "yes"})


@hookimpl
def register_commands(cli):
    import click

    @cli.command("example-hello")
    @click.pass_obj
    def example_hello(client):
        """Say hello through the example plugin's route."""
        click.echo(json.dumps(client.get("/example/hello")))


@hookimpl
def authorize_container(request, identity, action, privileges, target):
    """Refuse any container that would share the host's pid namespace, however it is asked
    for (``--pid host``, or ``--pid container:X`` where X has the host's): the daemon hands the
    effective privileges, so the plugin never reads request fields."""
    if not _log_path():
        return None
    if privileges is not None and "pid" in privileges.host_namespaces:
        _write({"hook": "authorize_container", "action": action, "denied": sorted(privileges.host_namespaces)})
        return Decision.deny("example policy: no host pid namespace", rule="example-host-pid")
    return None
