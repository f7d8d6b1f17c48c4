"""The event bus: every transition is published here and fans out to ``GET /events``
subscribers and to the ``on_event`` hook.

A bounded history (as dockerd keeps) answers ``since`` queries.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable

from . import filters as F

log = logging.getLogger("dockyard.events")

EVENT_FILTERS = ("type", "event", "container", "image", "label", "network", "volume", "daemon", "scope")
HISTORY = 1024


@dataclass(frozen=True)
class Event:
    type: str  # container, image, network, volume, daemon, plugin
    action: str  # create, start, die, ...
    actor_id: str
    attributes: dict[str, str] = field(default_factory=dict)
    time_nano: int = field(default_factory=time.time_ns)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "Type": self.type,
            "Action": self.action,
            "Actor": {"ID": self.actor_id, "Attributes": dict(self.attributes)},
            "scope": "local",
            "time": self.time_nano // 1_000_000_000,
            "timeNano": self.time_nano,
        }
        if self.type == "container":  # fields from API < 1.22 that the docker CLI still reads
            out.update(status=self.action, id=self.actor_id, **{"from": self.attributes.get("image", "")})
        elif self.type == "image":
            out.update(status=self.action, id=self.actor_id)
        return out

    def matches(self, filters: F.Filters) -> bool:
        a = self.attributes
        checks = {
            "type": lambda v: self.type == v,
            "event": lambda v: self.action == v or self.action.split(":")[0] == v,
            "container": lambda v: self.type == "container" and v in (self.actor_id, a.get("name")),
            "image": lambda v: v in (a.get("image"), self.actor_id if self.type == "image" else None, a.get("name")),
            "network": lambda v: self.type == "network" and v in (self.actor_id, a.get("name")),
            "volume": lambda v: self.type == "volume" and v == self.actor_id,
            "daemon": lambda v: self.type == "daemon" and v in (self.actor_id, a.get("name")),
            "scope": lambda v: v == "local",
        }
        for key, values in filters.items():
            if key == "label":
                if not F.match_labels(values, a):
                    return False
            elif not any(checks[key](v) for v in values):
                return False
        return True


class EventBus:
    def __init__(self, on_event: Callable[[Event], Any] | None = None) -> None:
        self.history: collections.deque[Event] = collections.deque(maxlen=HISTORY)
        self.subscribers: set[asyncio.Queue[Event]] = set()
        self.on_event = on_event

    def publish(self, event: Event) -> None:
        self.history.append(event)
        for q in self.subscribers:
            q.put_nowait(event)
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception:  # observers never break the engine
                log.exception("on_event hook failed for %s %s", event.type, event.action)

    def emit(self, type: str, action: str, actor_id: str, /, **attributes: object) -> Event:
        # attributes: str() of each, None dropped
        event = Event(type, action, actor_id, {k: str(v) for k, v in attributes.items() if v is not None})
        self.publish(event)
        return event

    async def stream(
        self, since_ns: int | None, until_ns: int | None, filters: F.Filters
    ) -> AsyncIterator[Event]:
        """Past events from ``since`` then live ones, until ``until`` (or forever)."""
        queue: asyncio.Queue[Event] = asyncio.Queue()
        self.subscribers.add(queue)
        try:
            now = time.time_ns()
            if since_ns is not None:  # the snapshot is taken with no await after subscribing
                for ev in list(self.history):
                    if ev.time_nano >= since_ns and (until_ns is None or ev.time_nano <= until_ns):
                        if ev.matches(filters):
                            yield ev
            if until_ns is not None and until_ns <= now:
                return
            while True:
                timeout = None if until_ns is None else max(0.0, (until_ns - time.time_ns()) / 1e9)
                try:
                    ev = await asyncio.wait_for(queue.get(), timeout)
                except asyncio.TimeoutError:
                    return
                if until_ns is not None and ev.time_nano > until_ns:
                    return
                if ev.matches(filters):
                    yield ev
        finally:
            self.subscribers.discard(queue)
