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


def test_the_janitors_first_look_trims_start_up_even_after_requests() -> None:
    count = [0]
    janitor = MemoryJanitor(lambda: count[0], trim=lambda: None)
    count[0] += 2  # a client's first requests, before the first look
    assert janitor.tick(first=True)  # start-up's garbage goes back anyway
    assert not janitor.tick()  # then: quiet, nothing more


def test_nft_contexts_are_made_at_the_first_batch_and_freed_when_idle() -> None:
    # a libnftables context keeps a copy of the ruleset it listed (3.4 MB after the default
    # bridge's start-up): made when needed, freed by the janitor's trim when the daemon is
    # quiet, and the library (~1 MB mapped with its dependencies) unloaded with it
    import pytest

    from dockyard import nftables

    nft = nftables.Nft()
    if nft.backend != "libnftables":
        pytest.skip("libnftables is not installed")
    assert nft._ctx is None
    nft.try_run("list table ip dockyard_no_such_table_here")
    assert nft._ctx is not None
    trim = _malloc_trim()
    assert trim is not None
    trim()
    assert nft._ctx is None and not nftables.loaded()  # and the library is unloaded
    assert nft.try_run("list table ip dockyard_no_such_table_here") is None  # loaded again, a new context
    assert nft._ctx is not None and nftables.loaded()
    assert nftables.release_idle() >= 1 and nft._ctx is None and not nftables.loaded()
    nft.close()
