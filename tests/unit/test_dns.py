"""The embedded DNS resolver on its own: answers from a lookup function, forwarding, SERVFAIL,
and the resolv.conf a user-network container gets. No sockets (upstreams are faked)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from dnslib import QTYPE, RCODE, DNSRecord

from dockyard.drivers.network import Endpoint, Network
from dockyard.networks import dns
from dockyard.networks.record import NetRecord

NAMES = {"web": ["10.5.0.2"], "db": ["10.5.0.3"], "cache-alias": ["10.5.0.3"], "0123456789ab": ["10.5.0.2"]}


def _ask(resolver: dns.Resolver, name: str, qtype: str = "A") -> DNSRecord:
    data = asyncio.run(resolver.answer(DNSRecord.question(name, qtype).pack()))
    assert data is not None
    return DNSRecord.parse(data)


def test_known_names_answer_with_their_addresses():
    r = dns.Resolver(lambda n, client: NAMES.get(n), upstreams=lambda: [])
    for name, ip in (("web", "10.5.0.2"), ("DB.", "10.5.0.3"), ("cache-alias", "10.5.0.3"),
                     ("0123456789ab", "10.5.0.2")):
        reply = _ask(r, name)
        assert reply.header.rcode == RCODE.NOERROR
        assert [str(rr.rdata) for rr in reply.rr] == [ip]
        assert reply.rr[0].ttl == dns.TTL
    # AAAA of a known name: NOERROR without answers (the network is IPv4 only)
    reply = _ask(r, "web", "AAAA")
    assert reply.header.rcode == RCODE.NOERROR and reply.rr == []


def test_unknown_names_without_upstream_are_servfail():
    r = dns.Resolver(lambda n, client: NAMES.get(n), upstreams=lambda: [])
    assert _ask(r, "example.org").header.rcode == RCODE.SERVFAIL


def test_unknown_names_are_forwarded(monkeypatch):
    asked = []

    async def fake_query(server, data, qid):  # noqa: ANN001
        asked.append(server)
        q = DNSRecord.parse(data)
        if server == "192.0.2.1":
            raise OSError("unreachable")
        reply = q.reply()
        reply.add_answer(*__import__("dnslib").RR.fromZone(f"{q.q.qname} 60 A 198.51.100.7"))
        return reply.pack()

    monkeypatch.setattr(dns, "_udp_query", fake_query)
    r = dns.Resolver(lambda n, client: NAMES.get(n), upstreams=lambda: ["192.0.2.1", "127.0.0.53"],
                     client_upstreams={"10.5.0.3": ["203.0.113.9"]}.get)
    reply = _ask(r, "example.org")
    assert [str(rr.rdata) for rr in reply.rr] == ["198.51.100.7"]
    assert asked == ["192.0.2.1", "127.0.0.53"]
    # a container with its own --dns servers is forwarded to those
    asked.clear()
    asyncio.run(r.answer(DNSRecord.question("example.org").pack(), "10.5.0.3"))
    assert asked == ["203.0.113.9"]


def test_garbage_is_dropped():
    r = dns.Resolver(lambda n, client: None, upstreams=lambda: [])
    assert asyncio.run(r.answer(b"\x00")) is None


def test_host_resolvers_and_container_resolv_conf(tmp_path):
    conf = tmp_path / "resolv.conf"
    conf.write_text("# generated\nnameserver 127.0.0.53\nnameserver 10.0.0.1\nnameserver bogus\n"
                    "search corp.example\noptions edns0 trust-ad\n")
    assert dns.host_resolvers(str(conf)) == ["127.0.0.53", "10.0.0.1"]
    assert dns.host_resolvers(str(tmp_path / "missing")) == []
    assert dns.container_resolv_conf("10.5.0.1", {}, str(conf)) == (
        "nameserver 10.5.0.1\nsearch corp.example\noptions edns0 trust-ad\n")
    # --dns servers are the embedded server's upstreams for this container, not in its file
    assert dns.container_resolv_conf("10.5.0.1", {"Dns": ["9.9.9.9"], "DnsSearch": ["x"]}, str(conf)) == (
        "nameserver 10.5.0.1\nsearch x\noptions edns0 trust-ad\n")


@pytest.mark.parametrize("name, aliases, expected", [
    ("/web", ["Front"], {"web", "front", "0123456789ab"}),
    ("db", None, {"db", "0123456789ab"}),
])
def test_names_for(name, aliases, expected):
    assert dns.names_for("0123456789abcdef" * 4, name, aliases) == expected


def test_qtype_any_answers():
    r = dns.Resolver(lambda n, client: NAMES.get(n), upstreams=lambda: [])
    reply = _ask(r, "web", "ANY")
    assert reply.rr and reply.rr[0].rtype == QTYPE.A


def test_ptr_for_the_network_addresses():
    r = dns.Resolver(lambda n, client: None, upstreams=lambda: [],
                     reverse=lambda ip, client: {"10.5.0.2": ["web.front"]}.get(ip))
    reply = _ask(r, "2.0.5.10.in-addr.arpa", "PTR")
    assert [str(rr.rdata) for rr in reply.rr] == ["web.front."]
    # other addresses go upstream (none here: SERVFAIL)
    assert _ask(r, "9.0.5.10.in-addr.arpa", "PTR").header.rcode == RCODE.SERVFAIL


# -- names scoped by the asking container (several networks), read from records ------------------

def _service(**containers: list[tuple[str, str, list[str]]]) -> SimpleNamespace:
    """Networks ``front`` (10.1.0.0/24), ``back`` (10.2.0.0/24) and the default bridge
    (10.9.0.0/24); ``containers``: name -> [(network, address, aliases)], in joining order."""
    nets = {n: NetRecord(Network(id=n * 4, name=n, driver="bridge", subnet=f"10.{i}.0.0/24",
                                 gateway=f"10.{i}.0.1", predefined=n == "bridge"))
            for n, i in (("front", 1), ("back", 2), ("bridge", 9))}
    records = {r.id: r for r in nets.values()}
    cs = {}
    for name, eps in containers.items():
        cid = (name * 64)[:64]
        cs[cid] = SimpleNamespace(name=name, host_config={},
                                  networks={net: {"NetworkID": nets[net].id} for net, _, _ in eps})
        for net, ip, aliases in eps:
            epid = f"{name}-{net}"
            nets[net].endpoints[epid] = Endpoint(id=epid, network_id=nets[net].id, container_id=cid, netns="",
                                                 ifname="eth0", address=f"{ip}/24", aliases=aliases)
    return SimpleNamespace(records=records, daemon=SimpleNamespace(containers=SimpleNamespace(containers=cs)))


def test_an_asker_on_two_networks_resolves_names_on_both():
    svc = _service(both=[("front", "10.1.0.2", []), ("back", "10.2.0.2", [])],
                   web=[("front", "10.1.0.3", ["www"])], db=[("back", "10.2.0.3", ["pg"])],
                   dual=[("front", "10.1.0.4", []), ("back", "10.2.0.4", [])])
    front = dns.lookup_for(svc, "front" * 4)
    # asked through front's server (its resolv.conf), from its front address
    assert front("db", "10.1.0.2") == ["10.2.0.3"]
    assert front("pg", "10.1.0.2") == ["10.2.0.3"]
    assert front("www", "10.1.0.2") == ["10.1.0.3"]
    assert front(("db" * 64)[:12], "10.1.0.2") == ["10.2.0.3"]
    # a name on both: the address on the network of the server asked first
    assert front("dual", "10.1.0.2") == ["10.1.0.4"]
    assert dns.lookup_for(svc, "back" * 4)("dual", "10.2.0.2") == ["10.2.0.4"]
    # a container only on front sees front only
    assert front("db", "10.1.0.3") is None
    # an unknown address sees the server's network, as before
    assert front("www", "10.1.0.200") == ["10.1.0.3"] and front("db", "10.1.0.200") is None
    # PTR: addresses on any network the asker is on
    reverse = dns.reverse_for(svc, "front" * 4)
    assert reverse("10.2.0.3", "10.1.0.2") == ["db.back"]
    assert reverse("10.2.0.3", "10.1.0.3") is None


def test_an_asker_no_longer_on_the_servers_network_sees_its_remaining_ones():
    """Disconnected from front while its resolv.conf still named front's server: it asks from its
    back address and sees back only (front's names are gone for it)."""
    svc = _service(left=[("back", "10.2.0.2", [])], web=[("front", "10.1.0.3", [])],
                   db=[("back", "10.2.0.3", [])])
    front = dns.lookup_for(svc, "front" * 4)
    assert front("db", "10.2.0.2") == ["10.2.0.3"]
    assert front("web", "10.2.0.2") is None


def test_default_bridge_names_are_never_answered():
    svc = _service(plain=[("bridge", "10.9.0.2", [])], both=[("bridge", "10.9.0.3", []), ("front", "10.1.0.2", [])])
    front = dns.lookup_for(svc, "front" * 4)
    assert front("plain", "10.1.0.2") is None
    assert front("both", "10.9.0.2") is None  # a default-bridge-only container has no user network


def test_client_upstreams_by_address_on_any_network():
    svc = _service(both=[("front", "10.1.0.2", []), ("back", "10.2.0.2", [])])
    next(iter(svc.daemon.containers.containers.values())).host_config["Dns"] = ["192.0.2.53"]
    up = dns.client_upstreams_for(svc, "front" * 4)
    assert up("10.2.0.2") == ["192.0.2.53"] and up("10.1.0.9") is None


def test_resolv_conf_follows_the_networks_in_place(tmp_path, monkeypatch):
    svc = _service(c=[("bridge", "10.9.0.2", []), ("front", "10.1.0.2", []), ("back", "10.2.0.2", [])])
    c = next(iter(svc.daemon.containers.containers.values()))
    c.host_config.update({"Dns": ["192.0.2.53"], "DnsSearch": ["corp.example"], "DnsOptions": ["ndots:2"]})
    path = tmp_path / "resolv.conf"
    path.write_text("old\n")
    inode = path.stat().st_ino
    dns.write_resolv_conf(svc, c, tmp_path)
    assert path.read_text() == "nameserver 10.1.0.1\nsearch corp.example\noptions ndots:2\n"
    del c.networks["front"]
    dns.write_resolv_conf(svc, c, tmp_path)
    assert path.read_text() == "nameserver 10.2.0.1\nsearch corp.example\noptions ndots:2\n"
    del c.networks["back"]
    dns.write_resolv_conf(svc, c, tmp_path)  # only the default bridge: the --dns servers themselves
    assert path.read_text() == "nameserver 192.0.2.53\nsearch corp.example\noptions ndots:2\n"
    assert path.stat().st_ino == inode
