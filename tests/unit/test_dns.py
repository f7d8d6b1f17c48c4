"""The embedded DNS resolver on its own: answers from a lookup function, forwarding, SERVFAIL,
the names a container sees, the resolv.conf it gets and the rules that send 127.0.0.11:53 to
its sockets. No sockets (upstreams are faked)."""

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
    r = dns.Resolver(NAMES.get, upstreams=lambda: [])
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
    r = dns.Resolver(NAMES.get, upstreams=lambda: [])
    assert _ask(r, "example.org").header.rcode == RCODE.SERVFAIL


def test_forwarding_off_is_refused_without_recursion():
    r = dns.Resolver(NAMES.get, upstreams=lambda: None)  # a container on internal networks only
    reply = _ask(r, "example.org")
    assert reply.header.rcode == RCODE.REFUSED and reply.header.ra == 0
    assert [str(rr.rdata) for rr in _ask(r, "web").rr] == ["10.5.0.2"]  # its networks' names still answer


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
    r = dns.Resolver(NAMES.get, upstreams=lambda: ["192.0.2.1", "127.0.0.53"])
    reply = _ask(r, "example.org")
    assert [str(rr.rdata) for rr in reply.rr] == ["198.51.100.7"]
    assert asked == ["192.0.2.1", "127.0.0.53"]


def test_garbage_is_dropped():
    r = dns.Resolver(lambda n: None, upstreams=lambda: [])
    assert asyncio.run(r.answer(b"\x00")) is None


def test_host_resolvers_and_internal_resolv_conf(tmp_path):
    conf = tmp_path / "resolv.conf"
    conf.write_text("# generated\nnameserver 127.0.0.53\nnameserver 10.0.0.1\nnameserver bogus\n"
                    "search corp.example\noptions edns0 trust-ad\n")
    assert dns.host_resolvers(str(conf)) == ["127.0.0.53", "10.0.0.1"]
    assert dns.host_resolvers(str(tmp_path / "missing")) == []
    # Docker's file: 127.0.0.11 only, the host's search and options, ndots:0 added
    assert dns.internal_resolv_conf({}, str(conf)) == (
        "nameserver 127.0.0.11\nsearch corp.example\noptions edns0 trust-ad ndots:0\n")
    # --dns servers are the resolver's upstreams, not entries; --dns-search/--dns-option win
    assert dns.internal_resolv_conf({"Dns": ["9.9.9.9"], "DnsSearch": ["x"], "DnsOptions": ["attempts:2"]},
                                    str(conf)) == "nameserver 127.0.0.11\nsearch x\noptions attempts:2 ndots:0\n"
    # an ndots of the user's is kept as it is
    assert dns.internal_resolv_conf({"DnsOptions": ["ndots:3"]}, str(tmp_path / "missing")) == (
        "nameserver 127.0.0.11\noptions ndots:3\n")
    assert dns.internal_resolv_conf({}, str(tmp_path / "missing")) == "nameserver 127.0.0.11\noptions ndots:0\n"


def test_redirect_rules_send_port_53_to_the_resolver_ports():
    rules = dns.redirect_rules(40001, 40002)
    assert "ip daddr 127.0.0.11 udp dport 53 dnat to 127.0.0.11:40001" in rules
    assert "ip daddr 127.0.0.11 tcp dport 53 dnat to 127.0.0.11:40002" in rules
    assert "type nat hook output" in rules
    # replaces the rules of an older resolver (daemon restart) in the same transaction
    assert rules.index("flush chain ip dockyard_dns output") < rules.index("dnat to")


@pytest.mark.parametrize("name, aliases, expected", [
    ("/web", ["Front"], {"web", "front", "0123456789ab"}),
    ("db", None, {"db", "0123456789ab"}),
])
def test_names_for(name, aliases, expected):
    assert dns.names_for("0123456789abcdef" * 4, name, aliases) == expected


def test_qtype_any_answers():
    r = dns.Resolver(NAMES.get, upstreams=lambda: [])
    reply = _ask(r, "web", "ANY")
    assert reply.rr and reply.rr[0].rtype == QTYPE.A


def test_ptr_for_the_network_addresses():
    r = dns.Resolver(lambda n: None, upstreams=lambda: [],
                     reverse={"10.5.0.2": ["web.front"]}.get)
    reply = _ask(r, "2.0.5.10.in-addr.arpa", "PTR")
    assert [str(rr.rdata) for rr in reply.rr] == ["web.front."]
    # other addresses go upstream (none here: SERVFAIL)
    assert _ask(r, "9.0.5.10.in-addr.arpa", "PTR").header.rcode == RCODE.SERVFAIL


# -- the names a container sees (several networks), read from the records ------------------------

def _service(**containers: list[tuple[str, str, list[str]]]) -> SimpleNamespace:
    """Networks ``front`` (10.1.0.0/24), ``back`` (10.2.0.0/24) and the default bridge
    (10.9.0.0/24); ``containers``: name -> [(network, address, aliases)], in joining order.
    A container's id is its name repeated."""
    nets = {n: NetRecord(Network(id=n * 4, name=n, driver="bridge", subnet=f"10.{i}.0.0/24",
                                 gateway=f"10.{i}.0.1", predefined=n == "bridge"))
            for n, i in (("front", 1), ("back", 2), ("bridge", 9))}
    records = {r.id: r for r in nets.values()}
    cs = {}
    for name, eps in containers.items():
        cid = _id(name)
        cs[cid] = SimpleNamespace(id=cid, name=name, host_config={},
                                  networks={net: {"NetworkID": nets[net].id} for net, _, _ in eps})
        for net, ip, aliases in eps:
            epid = f"{name}-{net}"
            nets[net].endpoints[epid] = Endpoint(id=epid, network_id=nets[net].id, container_id=cid, netns="",
                                                 ifname="eth0", address=f"{ip}/24", aliases=aliases)
    return SimpleNamespace(records=records, daemon=SimpleNamespace(containers=SimpleNamespace(containers=cs)))


def _id(name: str) -> str:
    return (name * 64)[:64]


def test_a_container_on_two_networks_resolves_names_on_both():
    svc = _service(both=[("front", "10.1.0.2", []), ("back", "10.2.0.2", [])],
                   web=[("front", "10.1.0.3", ["www"])], db=[("back", "10.2.0.3", ["pg"])],
                   dual=[("front", "10.1.0.4", []), ("back", "10.2.0.4", [])])
    both = _id("both")
    assert dns.lookup(svc, both, "db") == ["10.2.0.3"]
    assert dns.lookup(svc, both, "pg") == ["10.2.0.3"]
    assert dns.lookup(svc, both, "www") == ["10.1.0.3"]
    assert dns.lookup(svc, both, _id("db")[:12]) == ["10.2.0.3"]
    assert [r.name for r in dns.scope(svc, both)] == ["front", "back"]
    # a name on both: the address on the network the asker joined first
    assert dns.lookup(svc, both, "dual") == ["10.1.0.4"]
    # the others see it at its address on the network they share
    assert dns.lookup(svc, _id("web"), "both") == ["10.1.0.2"]
    assert dns.lookup(svc, _id("db"), "both") == ["10.2.0.2"]
    # a container only on front sees front only
    assert dns.lookup(svc, _id("web"), "db") is None
    # PTR: addresses on any network the asker is on
    assert dns.reverse(svc, both, "10.2.0.3") == ["db.back"]
    assert dns.reverse(svc, _id("web"), "10.2.0.3") is None
    # through a container's resolver, on the wire
    r = dns.resolver_for(svc, both)
    assert [str(rr.rdata) for rr in _ask(r, "PG").rr] == ["10.2.0.3"]
    assert [str(rr.rdata) for rr in _ask(r, "3.0.2.10.in-addr.arpa", "PTR").rr] == ["db.back."]


def test_a_network_being_connected_comes_after_the_listed_ones():
    svc = _service(c=[("back", "10.2.0.2", [])], web=[("front", "10.1.0.3", [])])
    c = svc.daemon.containers.containers[_id("c")]
    svc.records["front" * 4].endpoints["c-front"] = Endpoint(
        id="c-front", network_id="front" * 4, container_id=c.id, netns="", ifname="eth1", address="10.1.0.9/24")
    assert [r.name for r in dns.scope(svc, c.id)] == ["back", "front"]
    assert dns.lookup(svc, c.id, "web") == ["10.1.0.3"]


def test_a_disconnected_network_is_out_of_scope_at_once():
    svc = _service(c=[("front", "10.1.0.2", []), ("back", "10.2.0.2", [])], web=[("front", "10.1.0.3", [])])
    assert dns.lookup(svc, _id("c"), "web") == ["10.1.0.3"]
    del svc.records["front" * 4].endpoints["c-front"]
    del svc.daemon.containers.containers[_id("c")].networks["front"]
    assert dns.lookup(svc, _id("c"), "web") is None


def test_default_bridge_names_are_never_answered():
    svc = _service(plain=[("bridge", "10.9.0.2", [])], both=[("bridge", "10.9.0.3", []), ("front", "10.1.0.2", [])])
    assert dns.lookup(svc, _id("both"), "plain") is None
    assert dns.scope(svc, _id("plain")) == []  # no user network: no resolver at all
    assert [r.name for r in dns.scope(svc, _id("both"))] == ["front"]


def test_upstreams_are_the_containers_dns_servers_else_the_hosts(monkeypatch):
    svc = _service(c=[("front", "10.1.0.2", [])], other=[("front", "10.1.0.3", [])])
    svc.daemon.containers.containers[_id("c")].host_config["Dns"] = ["192.0.2.53"]
    monkeypatch.setattr(dns, "host_resolvers", lambda: ["10.0.0.1"])
    assert dns.upstreams(svc, _id("c")) == ["192.0.2.53"]
    assert dns.upstreams(svc, _id("other")) == ["10.0.0.1"]


def test_nothing_is_forwarded_for_a_container_only_on_internal_networks(monkeypatch):
    """CVE-2024-29018: forwarding happens from the host's namespace, so a container whose
    networks are all --internal must not get names resolved outside (its --dns included)."""
    svc = _service(c=[("front", "10.1.0.2", [])], both=[("front", "10.1.0.3", []), ("back", "10.2.0.3", [])])
    monkeypatch.setattr(dns, "host_resolvers", lambda: ["10.0.0.1"])
    svc.records["front" * 4].net.internal = True
    svc.daemon.containers.containers[_id("c")].host_config["Dns"] = ["192.0.2.53"]
    assert dns.upstreams(svc, _id("c")) is None
    assert dns.upstreams(svc, _id("both")) == ["10.0.0.1"]  # back reaches out: forwarding stays on


class _FakeDNS:
    def __init__(self) -> None:
        self.servers: dict[str, object] = {}

    async def start(self, cid, namespace):  # noqa: ANN001
        self.servers[cid] = namespace


def test_resolv_conf_at_start_and_connect_in_place(tmp_path, monkeypatch):
    """Start on a user network: 127.0.0.11. A default-bridge container: the host-style file at
    start, 127.0.0.11 when it gains a user network; disconnects leave the file as it is (Docker)."""
    from dockyard.containers import etcfiles

    monkeypatch.setattr(etcfiles, "_host_resolv", lambda: ["nameserver 10.0.0.1", "search corp.example"])
    monkeypatch.setattr(dns, "internal_resolv_conf", lambda hc: "nameserver 127.0.0.11\noptions ndots:0\n")
    svc = _service(c=[("bridge", "10.9.0.2", [])])
    svc.dns = _FakeDNS()
    svc.netns_path = lambda cid: tmp_path / "ns" / cid
    c = svc.daemon.containers.containers[_id("c")]
    path = tmp_path / "resolv.conf"
    path.write_text("nameserver 127.0.0.11\n")  # what a former run with a user network left
    inode = path.stat().st_ino
    asyncio.run(dns.setup_container(svc, c, tmp_path))
    assert path.read_text() == "nameserver 10.0.0.1\nsearch corp.example\n" and not svc.dns.servers
    asyncio.run(dns.setup_container(svc, c, tmp_path, connect=True))  # still no user network
    assert path.read_text() == "nameserver 10.0.0.1\nsearch corp.example\n" and not svc.dns.servers
    svc.records["front" * 4].endpoints["c-front"] = Endpoint(
        id="c-front", network_id="front" * 4, container_id=c.id, netns="", ifname="eth1", address="10.1.0.9/24")
    c.networks["front"] = {"NetworkID": "front" * 4}
    asyncio.run(dns.setup_container(svc, c, tmp_path, connect=True))
    assert path.read_text() == "nameserver 127.0.0.11\noptions ndots:0\n"
    assert svc.dns.servers == {c.id: tmp_path / "ns" / c.id}
    assert path.stat().st_ino == inode


def test_aaaa_and_ip6_arpa_ptr_on_networks_with_ipv6():
    both = {"web": ["10.5.0.2", "fd00:db8:1::2"]}
    r = dns.Resolver(both.get, upstreams=lambda: [], reverse={"fd00:db8:1::2": ["web.front"]}.get)
    assert [str(rr.rdata) for rr in _ask(r, "web", "AAAA").rr] == ["fd00:db8:1::2"]
    assert [str(rr.rdata) for rr in _ask(r, "web", "A").rr] == ["10.5.0.2"]
    assert sorted(rr.rtype for rr in _ask(r, "web", "ANY").rr) == sorted([QTYPE.A, QTYPE.AAAA])
    name = ".".join(reversed("fd000db8000100000000000000000002")) + ".ip6.arpa"
    assert [str(rr.rdata) for rr in _ask(r, name, "PTR").rr] == ["web.front."]
    assert dns._ptr_address("1.2.ip6.arpa") is None and dns._ptr_address("4.3.2.1.in-addr.arpa") == "1.2.3.4"
