"""What the API server keeps after work (issue 18, memory after work): closed hijacked
connections are not held per peer, and the janitor gives freed heap back once quiet."""

from __future__ import annotations

from dockyard.api.janitor import MemoryJanitor, _malloc_trim
from dockyard.api.limits import PRUNE_AT, Limits


class Transport:
    def __init__(self) -> None:
        self.closed = False

    def is_closing(self) -> bool:
        return self.closed


def test_closed_hijacked_connections_are_not_kept_per_peer() -> None:
    # attach and exec connections change protocol: the limits never hear of their end
    limits = Limits()
    peer = ("uid", 0)
    for _ in range(200):
        t = Transport()
        assert limits.acquire(peer, t)
        t.closed = True  # hijacked, then closed: no release()
    live = Transport()
    assert limits.acquire(peer, live)
    assert len(limits.open[peer]) <= PRUNE_AT + 1
    assert live in limits.open[peer]


def test_the_cap_still_counts_open_connections() -> None:
    limits = Limits(max_connections_per_peer=3)
    peer = ("uid", 1000)
    held = [Transport() for _ in range(3)]
    assert all(limits.acquire(peer, t) for t in held)
    assert not limits.acquire(peer, Transport())
    held[0].closed = True
    many = [Transport() for _ in range(PRUNE_AT)]
    limits.max_connections_per_peer = 0  # no cap: fill past PRUNE_AT
    assert all(limits.acquire(peer, t) for t in many)
    limits.max_connections_per_peer = 3 + PRUNE_AT
    assert limits.acquire(peer, Transport())  # the closed one was pruned, making room


def test_the_janitor_trims_once_when_work_is_followed_by_quiet() -> None:
    count = [0]
    janitor = MemoryJanitor(lambda: count[0], trim=lambda: None)
    assert janitor.tick()  # quiet after start-up (work too)
    assert not janitor.tick()  # idle: nothing more to give back
    count[0] += 5
    assert not janitor.tick()  # busy: not now
    count[0] += 1
    assert not janitor.tick()
    assert janitor.tick()  # quiet after work: trim
    assert not janitor.tick()  # once
    count[0] += 1
    assert not janitor.tick()
    assert janitor.tick()


def test_malloc_trim_is_callable_here() -> None:
    trim = _malloc_trim()
    assert trim is not None  # glibc
    trim()
