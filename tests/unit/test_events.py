import asyncio
import time

import pytest

from dockyard import filters as F
from dockyard.errors import InvalidArgument
from dockyard.events import EVENT_FILTERS, Event, EventBus


def ev(type_="container", action="start", actor="abc", **attrs):
    return Event(type_, action, actor, {k: str(v) for k, v in attrs.items()})


def test_event_json_has_docker_fields():
    j = ev(image="busybox", name="web").to_json()
    assert j["Type"] == "container" and j["Action"] == "start"
    assert j["Actor"] == {"ID": "abc", "Attributes": {"image": "busybox", "name": "web"}}
    assert j["status"] == "start" and j["id"] == "abc" and j["from"] == "busybox"
    assert j["time"] == j["timeNano"] // 10**9


@pytest.mark.parametrize("filters,expected", [
    ({"type": ["container"]}, True),
    ({"type": ["image"]}, False),
    ({"event": ["start", "stop"]}, True),
    ({"event": ["die"]}, False),
    ({"container": ["web"]}, True),
    ({"container": ["abc"]}, True),
    ({"container": ["other"]}, False),
    ({"label": ["team=a"]}, True),
    ({"label": ["team=b"]}, False),
    ({"label": ["team"]}, True),
    ({"type": ["container"], "event": ["die"]}, False),
])
def test_filters(filters, expected):
    assert ev(name="web", team="a").matches(filters) is expected


def test_filter_parsing_accepts_both_docker_forms():
    assert F.parse('{"type":["container"]}', EVENT_FILTERS) == {"type": ["container"]}
    assert F.parse('{"type":{"container":true}}', EVENT_FILTERS) == {"type": ["container"]}
    with pytest.raises(InvalidArgument, match="invalid filter 'bogus'"):
        F.parse('{"bogus":["x"]}', EVENT_FILTERS)
    with pytest.raises(InvalidArgument):
        F.parse("{not json", EVENT_FILTERS)


def test_stream_replays_history_then_live_and_stops_at_until():
    async def go():
        seen = []
        bus = EventBus(on_event=seen.append)
        start = time.time_ns()
        bus.emit("container", "create", "a")
        bus.emit("image", "tag", "i")

        async def consume():
            got = []
            async for e in bus.stream(start, time.time_ns() + 1_000_000_000, {"type": ["container"]}):
                got.append(e.action)
            return got

        task = asyncio.ensure_future(consume())
        while not bus.subscribers:  # subscribed: "start" is a live event, not history
            await asyncio.sleep(0)
        bus.emit("container", "start", "a")
        got = await asyncio.wait_for(task, 5)
        assert got == ["create", "start"]
        assert [e.action for e in seen] == ["create", "tag", "start"]
        assert not bus.subscribers

    asyncio.run(go())


def test_a_failing_observer_does_not_break_publishing():
    def boom(_):
        raise RuntimeError("observer bug")

    bus = EventBus(on_event=boom)
    bus.emit("container", "start", "a")
    assert len(bus.history) == 1
