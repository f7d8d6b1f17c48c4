"""Every Dockyard hook, declared and documented in one place.

Hooks are for one-to-many points; drivers (storage, network, cgroups, runtime, transport)
are one-to-one and are not hooks (see ``dockyard.drivers``).

Rules for every hook:

* An implementation may be a plain function or an ``async def``: the daemon awaits any
  awaitable result (``dockyard.plugins.call_hook``). pluggy itself never awaits, so no hook
  here is ``firstresult`` and none uses wrappers; "first answer wins" is written in core.
* Implementations may accept any subset of the declared parameters, by name.
* Hook modules come from the ``dockyard.hooks`` entry-point group; a driver object may carry
  hook implementations too. Set ``DOCKYARD_DISABLE_PLUGINS=name1,name2`` to block modules.

Each docstring says when the hook runs, what it receives, and what a return value means.
"""

from __future__ import annotations

import pluggy

PROJECT = "dockyard"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# -- daemon lifecycle ------------------------------------------------------------------


@hookspec
def startup(daemon):
    """Run once when the daemon has loaded its drivers, before it starts listening.

    :param daemon: the :class:`dockyard.daemon.Daemon` (config, drivers, event bus, services).

    All implementations run, in registration order. Raising stops the daemon: use it to
    refuse to start when a plugin's own prerequisites are missing. May be async.
    """


@hookspec
def inactive_hooks(daemon):
    """Name this module's request hooks that have nothing to do under this daemon's config.

    Called once, after every ``startup`` implementation ran and before the daemon listens.

    :param daemon: the :class:`dockyard.daemon.Daemon`.
    :return: an iterable of hook names among ``authenticate_request``, ``authorize_request``,
        ``authorize_container`` and ``request_finished`` (another name stops the daemon), or
        None. For the daemon's lifetime core then does not call this module's implementation
        of an ``authorize_*`` or ``request_finished`` hook named here (a module that may have
        to deny later, e.g. after a reload, must not name it: authorization fails closed).
        ``authenticate_request`` named here means "my identity is only for my own hooks":
        it is still called while any module's ``authorize_request``, ``authorize_container``
        or ``request_finished`` implementation stays active (the identity is theirs to see);
        when none does, nothing observes an identity and ``request["identity"]`` is anonymous
        (a module whose routes read it keeps one of those hooks active).

    Checked once, so the request path pays nothing for a module that is inactive here
    (the ``/_ping`` fast path answers without building a request when no request hook is
    left). All implementations run, in registration order. Synchronous only.
    """


@hookspec
def shutdown(daemon):
    """Run once when the daemon is stopping, after it stopped listening, before drivers close.

    :param daemon: the :class:`dockyard.daemon.Daemon`.

    All implementations run; an exception is logged and does not stop the others. May be async.
    """


# -- requests --------------------------------------------------------------------------


@hookspec
def register_routes(daemon):
    """Add HTTP endpoints to the API.

    Called once while the application is built, before ``startup``.

    :param daemon: the :class:`dockyard.daemon.Daemon`.
    :return: an iterable of ``dockyard.http.web.RouteDef`` (e.g. a ``web.RouteTableDef``,
        ``from dockyard.http import web``) or None. The routes are served with and without
        the ``/vX.Y`` prefix and go through the same middleware (errors, authentication,
        authorization) as built-in routes. An ``aiohttp.web`` RouteDef from a plugin written
        before is still accepted (its ``method``, ``path``, ``handler``): the handler gets a
        ``dockyard.http.web.Request``, and an aiohttp response or HTTP exception it makes is
        answered as the daemon's own; a streaming handler must be ported to
        ``dockyard.http.web``.
    """


@hookspec
def authenticate_request(request, peer):
    """Say who is calling.

    Called for every request, before routing to the handler.

    :param request: the ``dockyard.http.web.Request``.
    :param peer: a :class:`dockyard.identity.Peer` with what the transport knows about the
        connection: ``transport`` (``unix``/``tcp``/``tls``...), and where available the
        Unix peer credentials (``uid``, ``gid``, ``pid`` from SO_PEERCRED) and the TLS peer
        certificate (``cert``, as returned by ``SSLSocket.getpeercert()``).
    :return: an :class:`dockyard.identity.Identity`, or None to abstain. The first non-None
        answer (in hook call order) becomes ``request["identity"]``; when all abstain the
        identity is anonymous. May be async.
    """


@hookspec
def authorize_request(request, identity):
    """Allow or deny a request.

    Called for every request after ``authenticate_request``, before the handler runs
    (so a denied request changes nothing), including hijacked and streaming requests.

    :param request: the ``dockyard.http.web.Request``; ``request["route"]`` is the route template
        (e.g. ``/containers/{id}/start``), ``request["body_json"]`` the parsed JSON body or None.
    :param identity: the :class:`dockyard.identity.Identity` from ``authenticate_request``.
    :return: a :class:`dockyard.identity.Decision` or None to abstain. Any denial wins and
        the client gets 403 with the decision's message. May be async.
    """


@hookspec
def request_finished(request, identity, response, duration):
    """Observe a request after it was answered: for audit trails and metrics.

    Called once per request after the handler (or the error renderer) produced the
    response, including denied, failed, streaming and hijacked requests (for those, when
    the handler returns, i.e. when the stream ended). The middleware only calls it when
    some plugin implements it, so it costs nothing otherwise.

    :param request: the ``dockyard.http.web.Request``; ``request["route"]`` is the route template,
        ``request.match_info`` the object ids, ``request.get("body_json")`` the parsed JSON
        body when an ``authorize_request`` hook made the middleware read it,
        ``request.get("denied_by")`` the :class:`~dockyard.identity.Decision` that denied it.
    :param identity: the :class:`dockyard.identity.Identity` the request ran as (anonymous
        when no ``authenticate_request`` hook answered).
    :param response: the ``dockyard.http.web.StreamResponse`` sent (``response.status``).
    :param duration: seconds from the start of the middleware to the end of the handler.

    All implementations run; return values are ignored; an exception is logged and does
    not change the response. May be async (it is then awaited before the response returns).
    """


@hookspec
def request_observed(route, method, status, duration):
    """Count a request: ``request_finished`` for metrics, with plain values and no request.

    Called once per request, when ``request_finished`` is (same moment, same requests), and
    also for every ``/_ping`` the fast path answers (:mod:`dockyard.api.fastpath`) without
    building a request object: so a module that only counts costs a function call per
    ping, where ``request_finished`` makes every ping take the full request path.

    :param route: the route template (``/containers/{id}/json``, ``/_ping``), or None when
        the request matched no route (raw paths are unbounded: never use them as labels).
    :param method: the HTTP method as sent.
    :param status: the response's status code.
    :param duration: seconds from the start of the middleware to the end of the handler.

    All implementations run; return values are ignored; an exception is logged. Synchronous
    only (it runs on the connection's data callback): keep it to counting.
    """


@hookspec
def handle_exception(request, exception):
    """Render an exception raised while handling a request.

    :param request: the ``dockyard.http.web.Request``.
    :param exception: the exception (a :class:`dockyard.errors.DockyardError` or a bug).
    :return: an ``dockyard.http.web.Response`` or None. The first non-None answer is sent. The
        built-in renderer (Docker's ``{"message": ...}`` body) is registered like any
        plugin and runs last. May be async.
    """


# -- containers and events ---------------------------------------------------------------


@hookspec
def container_spec(config, host_config, name):
    """Inspect or change a container's configuration before it is created.

    Called by ``POST /containers/create`` after the request is parsed and before anything is
    created, so raising (e.g. :class:`dockyard.errors.Forbidden` or ``InvalidArgument``)
    rejects the request with nothing left behind.

    :param config: the container's ``Config`` dict (Image, Cmd, Env, Labels...); mutate in place.
    :param host_config: the ``HostConfig`` dict; mutate in place.
    :param name: the requested name, or None.

    All implementations run. Return values are ignored. May be async.
    """


@hookspec
def authorize_container(request, identity, action, privileges, target):
    """Allow or deny what a container will really get: the effective privileges.

    ``authorize_request`` sees a request's fields; this hook sees their result, after every
    default and reference is resolved (:mod:`dockyard.containers.effective`): a ``local``
    volume with ``o=bind`` is a host path, ``--network container:X`` is the host's network
    when X has it (followed transitively, and checked against the kernel when X runs), empty
    ``MaskedPaths`` are unmasked system paths, a build's ``networkmode`` is its RUN
    containers'. Called by core, while serving the request, before anything is created or
    started, for each ``action``:

    * ``create``: ``POST /containers/create`` (also each RUN step container of a build);
    * ``start``: ``POST /containers/{id}/start`` and ``/restart`` (the container may have been
      created by someone else; a ``container:X`` namespace is resolved again);
    * ``exec``: ``POST /containers/{id}/exec`` and ``POST /exec/{id}/start``: the container's
      privileges, and all of them for a ``Privileged`` exec;
    * ``build``: ``POST /build`` before the context is read (its RUN containers' privileges);
    * ``volume``: ``POST /volumes/create`` (a volume binding a host path is that host path);
    * ``attach``: ``POST /containers/{id}/attach`` (the container's process: all its privileges);
    * ``archive``: ``docker cp`` (``HEAD/GET/PUT /containers/{id}/archive``): only the
      ``host_paths`` its mounts bind.

    Not called for what the daemon does by itself (restart policies, live-restore), nor when
    no module implements it (nothing is computed then).

    :param request: the ``dockyard.http.web.Request`` being served (``request["route"]``,
        ``request.get("body_json")``): for a build step, the ``/build`` request.
    :param identity: the :class:`dockyard.identity.Identity` of the request.
    :param action: one of the strings above.
    :param privileges: a :class:`dockyard.containers.effective.Privileges`: ``privileged``,
        ``host_namespaces``, ``host_paths`` (host realpaths), ``capabilities`` (beyond Docker's
        default set), ``devices``, ``unconfined``; None when they could not be worked out
        (a request shape the daemon refuses later): decide against the caller then.
    :param target: a dict naming the object: ``container`` (id or name), ``image``, ``exec``,
        ``volume``, when known.
    :return: a :class:`dockyard.identity.Decision` or None to abstain. Any denial wins: the
        client gets 403 with its message and nothing is created or started. Fails closed: an
        exception in an implementation, or an answer that is not a Decision, denies.
        May be async.
    """


@hookspec
def on_event(event):
    """Observe an event: every container, image, network, volume and daemon transition.

    :param event: a :class:`dockyard.events.Event` (Docker's ``Type``, ``Action``, ``Actor``,
        ``time``, ``timeNano``); ``event.to_json()`` is what ``GET /events`` sends.

    Called after the transition happened. All implementations run; exceptions are logged
    and do not affect the engine. May be async (it is then awaited in the background).
    """


# -- the CLI ---------------------------------------------------------------------------


@hookspec
def register_commands(cli):
    """Add commands to the ``dockyard`` CLI.

    Called in the client process (not the daemon), once, the first time the CLI needs a command
    that is not built in or the list of all commands (``--help``); a built-in command such as
    ``dockyard ps`` runs without loading hook modules. So add new names: a plugin cannot
    replace a built-in command or add to a built-in group.

    :param cli: the root ``click.Group``; call ``cli.command()`` / ``cli.add_command()``.

    All implementations run. Synchronous only.
    """
