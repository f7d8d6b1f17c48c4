"""IPAM without root: allocations, ranges, fixed addresses, default subnet choice."""

from __future__ import annotations

import ipaddress

import pytest

from dockyard.errors import Conflict, InvalidArgument, Unavailable
from dockyard.networks import ipam
from dockyard.networks.service import mac_for


def test_dynamic_addresses_skip_the_gateway_and_are_never_handed_out_twice():
    allocated = {"10.0.0.1": "gateway"}
    pool = ipam.Pool("10.0.0.0/29", "", allocated)
    got = [pool.request(f"ep{i}") for i in range(5)]
    assert got == ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"]
    with pytest.raises(Unavailable):
        pool.request("one-too-many")
    pool.release("ep1")
    assert pool.request("again") == "10.0.0.3"
    assert sorted(allocated.values()).count("gateway") == 1 and len(allocated) == 6


def test_round_robin_does_not_reuse_a_just_released_address():
    allocated = {"10.0.0.1": "gateway"}
    pool = ipam.Pool("10.0.0.0/24", "", allocated)
    first = pool.request("a")
    pool.release("a")
    assert pool.request("b") != first
    # a new Pool over the same record (daemon restart) continues after the saved last address
    again = ipam.Pool("10.0.0.0/24", "", allocated, pool.last)
    assert again.request("c") == "10.0.0.4"


def test_ip_range_limits_dynamic_addresses_but_fixed_ones_may_use_the_subnet():
    pool = ipam.Pool("10.0.0.0/24", "10.0.0.128/25", {"10.0.0.1": "gateway"})
    assert ipaddress.ip_address(pool.request("a")) in ipaddress.ip_network("10.0.0.128/25")
    assert pool.request("b", "10.0.0.7") == "10.0.0.7"


def test_fixed_addresses_outside_or_taken_are_refused():
    pool = ipam.Pool("10.0.0.0/24", "", {"10.0.0.1": "gateway"})
    with pytest.raises(InvalidArgument):
        pool.request("a", "10.0.1.5")
    with pytest.raises(InvalidArgument):
        pool.request("a", "10.0.0.255")  # broadcast
    with pytest.raises(Conflict):
        pool.request("a", "10.0.0.1")
    assert pool.request("a", "10.0.0.9") == "10.0.0.9"
    with pytest.raises(Conflict):
        pool.request("b", "10.0.0.9")
    assert pool.request("a", "10.0.0.9") == "10.0.0.9"  # the same owner asking again is fine


def test_a_large_subnet_allocates_without_listing_it():
    pool = ipam.Pool("10.0.0.0/8", "", {"10.0.0.1": "gateway"})
    assert pool.request("a") == "10.0.0.2"


def test_default_subnets_avoid_taken_reserved_and_routed(monkeypatch):
    monkeypatch.setattr(ipam, "host_routes", lambda: [ipaddress.ip_network("172.18.0.0/16")])
    taken = [ipaddress.ip_network("172.19.0.0/16")]
    assert str(ipam.pick_subnet(taken)) == "172.20.0.0/16"
    assert str(ipam.pick_subnet(taken, start=3)) == "172.21.0.0/16"
    for net in (ipam.pick_subnet([], start=i) for i in range(len(ipam.default_pools()) - 1)):
        assert not net.overlaps(ipaddress.ip_network("172.17.0.0/16"))
        assert not net.overlaps(ipaddress.ip_network("10.88.0.0/16"))
    monkeypatch.setattr(ipam, "host_routes", lambda: [ipaddress.ip_network("0.0.0.0/1"),
                                                       ipaddress.ip_network("128.0.0.0/1")])
    with pytest.raises(Unavailable):
        ipam.pick_subnet([])


def test_subnet_and_address_parsing():
    assert str(ipam.parse_subnet("10.1.0.0/16")) == "10.1.0.0/16"
    for bad in ("nonsense", "10.1.0.1/16", "fd00::/64", "10.0.0.0/31"):
        with pytest.raises(InvalidArgument):
            ipam.parse_subnet(bad)
    with pytest.raises(InvalidArgument):
        ipam.parse_address("10.0.0", "gateway")


def test_docker_style_mac():
    assert mac_for("172.18.0.2") == "02:42:ac:12:00:02"


def test_ipv6_pool_subnets_and_the_daemon_ula():
    pool = ipam.Pool("fd00:db8:1::/64", "", {"fd00:db8:1::1": "gateway"})
    assert pool.request("a") == "fd00:db8:1::2"
    assert pool.request("b", "fd00:db8:1::f00d") == "fd00:db8:1::f00d"
    with pytest.raises(Conflict):
        pool.request("c", "fd00:db8:1::f00d")
    with pytest.raises(InvalidArgument):
        pool.request("c", "10.0.0.5")  # the wrong family
    with pytest.raises(InvalidArgument):
        pool.request("c", "fd00:db8:2::5")
    assert not pool.usable(ipaddress.ip_address("fd00:db8:1::"))  # the subnet-router anycast address
    assert str(ipam.parse_subnet("2001:389::0/96", 6)) == "2001:389::/96"  # not canonical, no host bits
    with pytest.raises(InvalidArgument):
        ipam.parse_subnet("fd00:db8:1::5/64", 6)
    with pytest.raises(InvalidArgument):
        ipam.parse_subnet("fd00:db8:1::/64")  # where IPv4 is expected
    base = ipam.ula_base("engine-id")
    assert base.prefixlen == 48 and base.subnet_of(ipaddress.ip_network("fd00::/8"))
    assert ipam.ula_base("engine-id") == base and ipam.ula_base("other") != base
    first = ipam.pick_subnet6([], base, 5)
    assert first.prefixlen == 64 and first.subnet_of(base)
    assert ipam.pick_subnet6([first], base, 5) != first
