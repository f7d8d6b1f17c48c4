"""The metrics of one daemon, in a registry of their own (never prometheus-client's global one).

Recording is plain counting in dicts (a request costs ~1 us, against ~6 us through
prometheus-client's labelled children and their locks) and prometheus-client is imported
only when the metrics are scraped (it is ~8 MB of an idle daemon's memory).

Names follow dockerd's engine metrics (``engine_daemon_*``) with a ``dockyard_`` prefix. Every
label has a bounded set of values: ``route`` is the route template (``/containers/{id}/json``),
never the raw path; a request that matched no route is ``route="unmatched"``; methods outside
HTTP's set are ``OTHER``; ``status`` is the class (``2xx``); ``action`` and ``state`` come from
the engine's own finite sets.
"""

from __future__ import annotations

import bisect
import collections
import logging
import threading
from typing import Any, Iterator

from dockyard.timestamps import rfc3339_ns

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
    return rfc3339_ns(text)


class _Histogram:
    """A histogram's counts (per bucket, not cumulative; the last is +Inf) and sum."""

    __slots__ = ("buckets", "counts", "sum")

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1  # le: value <= bound
        self.sum += value


class Metrics:
    def __init__(self, daemon: Any) -> None:
        self.daemon = daemon
        self.lock = threading.Lock()  # events may come from worker threads
        self.requests: dict[tuple[str, str, str], int] = {}  # (route, method, status class)
        self.request_seconds: dict[tuple[str, str], _Histogram] = {}  # (route, method)
        self.container_actions: dict[str, int] = {}
        self.container_action_seconds: dict[str, _Histogram] = {}
        self.events: dict[str, int] = {}
        self.exec_seconds = _Histogram(ACTION_BUCKETS)
        self.health_checks = 0
        self.health_checks_failed = 0
        self.health_seconds = _Histogram(ACTION_BUCKETS)
        self._registry: Any = None
        self._pending_execs: collections.OrderedDict[str, int] = collections.OrderedDict()
        self._health_seen: dict[str, int] = {}  # container id -> Start (ns) of the last probe counted

    # -- inputs ------------------------------------------------------------------------

    def request_finished(self, request: Any, response: Any, duration: float) -> None:
        self._count(route_label(request), request.method, getattr(response, "status", 500), duration)

    def observe(self, route: str | None, method: str, status: int, duration: float) -> None:
        """The ``request_observed`` hook's values (None: no route matched)."""
        self._count(route or UNMATCHED, method, status, duration)

    def _count(self, route: str, method: str, status: int, duration: float) -> None:
        if method not in METHODS:
            method = "OTHER"
        key = (route, method, status_class(status))
        with self.lock:
            self.requests[key] = self.requests.get(key, 0) + 1
            hist = self.request_seconds.get(key[:2])
            if hist is None:
                hist = self.request_seconds[key[:2]] = _Histogram(REQUEST_BUCKETS)
            hist.observe(duration)
            action = CONTAINER_ACTION_ROUTES.get((method, route))
            if action is not None and 200 <= status < 300:
                hist = self.container_action_seconds.get(action)
                if hist is None:
                    hist = self.container_action_seconds[action] = _Histogram(ACTION_BUCKETS)
                hist.observe(duration)

    def on_event(self, event: Any) -> None:
        with self.lock:
            self._on_event(event)

    def _on_event(self, event: Any) -> None:
        self.events[event.type] = self.events.get(event.type, 0) + 1
        if event.type != "container":
            return
        action = event.action.split(":", 1)[0]  # "exec_start: sh -c ...", "health_status: healthy"
        self.container_actions[action] = self.container_actions.get(action, 0) + 1
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
            self._sweep_health(event.actor_id)
        elif action == "destroy":
            self._health_seen.pop(event.actor_id, None)

    def sweep_health(self, only: str | None = None) -> None:
        with self.lock:
            self._sweep_health(only)

    def _sweep_health(self, only: str | None = None) -> None:
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
                self.health_checks += 1
                if result.get("ExitCode") != 0:
                    self.health_checks_failed += 1
                self.health_seconds.observe(max(0, end - start) / 1e9)
                last = start
            self._health_seen[cid] = last
        if only is None:  # forget containers without health state any more
            for cid in list(self._health_seen):
                if cid not in state:
                    del self._health_seen[cid]

    # -- output ------------------------------------------------------------------------

    def exposition(self) -> bytes:
        from prometheus_client import CollectorRegistry, disable_created_metrics, generate_latest

        self.sweep_health()
        if self._registry is None:
            disable_created_metrics()  # no *_created series: dockerd's exposition has none
            self._registry = CollectorRegistry(auto_describe=True)
            self._registry.register(_RecordedCollector(self))
            self._registry.register(_ScrapeCollector(self))
        return generate_latest(self._registry)


def _histogram(name: str, doc: str, labels: list[str], series: dict[Any, _Histogram]) -> Any:
    from prometheus_client.core import HistogramMetricFamily
    from prometheus_client.utils import floatToGoString

    family = HistogramMetricFamily(name, doc, labels=labels)
    for key, hist in series.items():
        total, buckets = 0, []
        for bound, n in zip((*hist.buckets, float("inf")), hist.counts):
            total += n
            buckets.append((floatToGoString(bound), total))
        family.add_metric(list(key) if isinstance(key, tuple) else [key] if labels else [], buckets, hist.sum)
    return family


class _RecordedCollector:
    """What :class:`Metrics` counted, as prometheus-client's counters and histograms showed it."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        m = self.metrics
        with m.lock:
            requests = CounterMetricFamily("dockyard_http_requests",
                                           "API requests answered, by route template, method and status class",
                                           labels=["route", "method", "status"])
            for key, n in m.requests.items():
                requests.add_metric(list(key), n)
            yield requests
            yield _histogram("dockyard_http_request_duration_seconds",
                             "Time to answer an API request (streams: until the stream ended)",
                             ["route", "method"], m.request_seconds)
            actions = CounterMetricFamily("dockyard_container_actions",
                                          "Container events, by action (create, start, die, destroy...)",
                                          labels=["action"])
            for action, n in m.container_actions.items():
                actions.add_metric([action], n)
            yield actions
            yield _histogram("dockyard_container_actions_seconds",
                             "Time the API took for a successful container action",
                             ["action"], m.container_action_seconds)
            events = CounterMetricFamily("dockyard_events", "Events emitted, by type", labels=["type"])
            for type_, n in m.events.items():
                events.add_metric([type_], n)
            yield events
            yield _histogram("dockyard_exec_duration_seconds",
                             "Run time of exec processes, exec_start to exec_die (health-check probes included)",
                             [], {(): m.exec_seconds})
            yield CounterMetricFamily("dockyard_health_checks", "Health-check probes run", value=m.health_checks)
            yield CounterMetricFamily("dockyard_health_checks_failed", "Health-check probes that failed",
                                      value=m.health_checks_failed)
            yield _histogram("dockyard_health_check_duration_seconds", "Run time of health-check probes", [],
                             {(): m.health_seconds})
        try:
            from dockyard import __version__
        except ImportError:  # pragma: no cover
            __version__ = "unknown"
        info = GaugeMetricFamily("dockyard_engine_info", "The engine's version (always 1)", labels=["version"])
        info.add_metric([__version__], 1)
        yield info


class _ScrapeCollector:
    """What is read from the services at scrape time: container states, images, volumes."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def describe(self) -> list[Any]:
        return []  # computed per scrape: nothing to check names against at registration

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

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
