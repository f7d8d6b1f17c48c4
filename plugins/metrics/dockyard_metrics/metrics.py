"""The metrics of one daemon, in a registry of their own (never prometheus-client's global one).

Names follow dockerd's engine metrics (``engine_daemon_*``) with a ``dockyard_`` prefix. Every
label has a bounded set of values: ``route`` is the route template (``/containers/{id}/json``),
never the raw path; a request that matched no route is ``route="unmatched"``; methods outside
HTTP's set are ``OTHER``; ``status`` is the class (``2xx``); ``action`` and ``state`` come from
the engine's own finite sets.
"""

from __future__ import annotations

import collections
import logging
from typing import Any, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import GaugeMetricFamily

log = logging.getLogger("dockyard.metrics")

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
UNMATCHED = "unmatched"
#: exec ids between exec_start and exec_die remembered at most (the oldest are forgotten)
MAX_PENDING_EXECS = 4096
STATES = ("created", "running", "paused", "restarting", "removing", "exited", "dead")

# dockerd's engine_daemon_container_actions_seconds: how long an action took, from the request
# that asked for it (successful ones only, as dockerd records them)
CONTAINER_ACTION_ROUTES = {
    ("POST", "/containers/create"): "create",
    ("POST", "/containers/{id}/start"): "start",
    ("POST", "/containers/{id}/stop"): "stop",
    ("POST", "/containers/{id}/restart"): "restart",
    ("POST", "/containers/{id}/kill"): "kill",
    ("POST", "/containers/{id}/pause"): "pause",
    ("POST", "/containers/{id}/unpause"): "unpause",
    ("POST", "/containers/{id}/update"): "update",
    ("POST", "/containers/{id}/rename"): "rename",
    ("DELETE", "/containers/{id}"): "delete",
    ("POST", "/commit"): "commit",
}

# seconds: dockerd's request buckets reach minutes (pulls, builds, attach streams)
REQUEST_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
ACTION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


def route_label(request: Any) -> str:
    """The route template of a request: its resource's canonical path, or ``unmatched``."""
    try:
        route = request.match_info.route
    except Exception:
        return UNMATCHED
    resource = getattr(route, "resource", None)
    canonical = getattr(resource, "canonical", None) if resource is not None else None
    return canonical or UNMATCHED


def status_class(status: int) -> str:
    return f"{status // 100}xx" if 100 <= status < 600 else "other"


def _ns(text: Any) -> int | None:
    """RFC 3339 (with up to nanoseconds) to Unix nanoseconds; None when unreadable."""
    if not isinstance(text, str) or not text:
        return None
    from datetime import datetime

    body, frac = text.rstrip("Z"), ""
    if "." in body:
        body, frac = body.split(".", 1)
    zone = "+00:00"
    for sign in ("+", "-"):
        if sign in frac:
            frac, tail = frac.split(sign, 1)
            zone = sign + tail
    if not frac and len(body) > 19:  # an offset without a fraction
        body, zone = body[:19], body[19:]
    try:
        seconds = int(datetime.fromisoformat(body + zone).timestamp())
    except ValueError:
        return None
    digits = (frac + "000000000")[:9]
    return seconds * 1_000_000_000 + int(digits or 0)


class Metrics:
    def __init__(self, daemon: Any) -> None:
        self.daemon = daemon
        disable_created_metrics()  # no *_created series: dockerd's exposition has none
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("dockyard_http_requests", "API requests answered, by route template, method and status class",
                                ("route", "method", "status"), registry=r)
        self.request_seconds = Histogram("dockyard_http_request_duration_seconds",
                                         "Time to answer an API request (streams: until the stream ended)",
                                         ("route", "method"), buckets=REQUEST_BUCKETS, registry=r)
        self.container_actions = Counter("dockyard_container_actions", "Container events, by action (create, start, die, destroy...)",
                                         ("action",), registry=r)
        self.container_action_seconds = Histogram("dockyard_container_actions_seconds",
                                                  "Time the API took for a successful container action",
                                                  ("action",), buckets=ACTION_BUCKETS, registry=r)
        self.events = Counter("dockyard_events", "Events emitted, by type", ("type",), registry=r)
        self.exec_seconds = Histogram("dockyard_exec_duration_seconds",
                                      "Run time of exec processes, exec_start to exec_die (health-check probes included)",
                                      buckets=ACTION_BUCKETS, registry=r)
        self.health_checks = Counter("dockyard_health_checks", "Health-check probes run", registry=r)
        self.health_checks_failed = Counter("dockyard_health_checks_failed", "Health-check probes that failed", registry=r)
        self.health_seconds = Histogram("dockyard_health_check_duration_seconds", "Run time of health-check probes",
                                        buckets=ACTION_BUCKETS, registry=r)
        info = Gauge("dockyard_engine_info", "The engine's version (always 1)", ("version",), registry=r)
        try:
            from dockyard import __version__
        except ImportError:  # pragma: no cover
            __version__ = "unknown"
        info.labels(version=__version__).set(1)
        r.register(_ScrapeCollector(self))
        self._pending_execs: collections.OrderedDict[str, int] = collections.OrderedDict()
        self._health_seen: dict[str, int] = {}  # container id -> Start (ns) of the last probe counted

    # -- inputs ------------------------------------------------------------------------

    def request_finished(self, request: Any, response: Any, duration: float) -> None:
        route = route_label(request)
        method = request.method if request.method in METHODS else "OTHER"
        status = getattr(response, "status", 500)
        self.requests.labels(route=route, method=method, status=status_class(status)).inc()
        self.request_seconds.labels(route=route, method=method).observe(duration)
        action = CONTAINER_ACTION_ROUTES.get((method, route))
        if action is not None and 200 <= status < 300:
            self.container_action_seconds.labels(action=action).observe(duration)

    def on_event(self, event: Any) -> None:
        self.events.labels(type=event.type).inc()
        if event.type != "container":
            return
        action = event.action.split(":", 1)[0]  # "exec_start: sh -c ...", "health_status: healthy"
        self.container_actions.labels(action=action).inc()
        exec_id = event.attributes.get("execID")
        if action == "exec_start" and exec_id:
            self._pending_execs[exec_id] = event.time_nano
            while len(self._pending_execs) > MAX_PENDING_EXECS:
                self._pending_execs.popitem(last=False)
        elif action == "exec_die" and exec_id:
            started = self._pending_execs.pop(exec_id, None)
            if started is not None:
                self.exec_seconds.observe(max(0, event.time_nano - started) / 1e9)
            # a probe's result is recorded after its exec died: count the previous ones now
            self.sweep_health(event.actor_id)
        elif action == "destroy":
            self._health_seen.pop(event.actor_id, None)

    def sweep_health(self, only: str | None = None) -> None:
        """Count the health-check probes recorded since the last sweep, from the containers'
        health logs (Docker keeps the last five results: between two sweeps, which happen at
        every exec exit and every scrape, older ones would not be seen)."""
        health = getattr(getattr(self.daemon, "containers", None), "health", None)
        state = getattr(health, "state", None)
        if not isinstance(state, dict):
            return
        for cid in [only] if only is not None else list(state):
            h = state.get(cid)
            if h is None:
                continue
            last = self._health_seen.get(cid, 0)
            for result in list(getattr(h, "log", ())):
                start, end = _ns(result.get("Start")), _ns(result.get("End"))
                if start is None or end is None or start <= last:
                    continue
                self.health_checks.inc()
                if result.get("ExitCode") != 0:
                    self.health_checks_failed.inc()
                self.health_seconds.observe(max(0, end - start) / 1e9)
                last = start
            self._health_seen[cid] = last
        if only is None:  # forget containers without health state any more
            for cid in list(self._health_seen):
                if cid not in state:
                    del self._health_seen[cid]

    # -- output ------------------------------------------------------------------------

    def exposition(self) -> bytes:
        self.sweep_health()
        return generate_latest(self.registry)


class _ScrapeCollector:
    """What is read from the services at scrape time: container states, images, volumes."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def describe(self) -> list[Any]:
        return []  # computed per scrape: nothing to check names against at registration

    def collect(self) -> Iterator[Any]:
        daemon = self.metrics.daemon
        containers = getattr(getattr(daemon, "containers", None), "containers", None)
        if isinstance(containers, dict):
            states = GaugeMetricFamily("dockyard_container_states_containers", "Containers, by state", labels=["state"])
            counts = dict.fromkeys(STATES, 0)
            for c in list(containers.values()):
                state = getattr(getattr(c, "state", None), "value", None) or str(getattr(c, "state", "unknown"))
                counts[state] = counts.get(state, 0) + 1
            for state, n in counts.items():
                states.add_metric([state], n)
            yield states
        images = getattr(getattr(daemon, "images", None), "images", None)
        if isinstance(images, dict):
            yield GaugeMetricFamily("dockyard_images", "Images in the image store", value=len(images))
        volumes = getattr(getattr(daemon, "volumes", None), "records", None)
        if isinstance(volumes, dict):
            yield GaugeMetricFamily("dockyard_volumes", "Volumes", value=len(volumes))
