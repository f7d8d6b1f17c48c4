"""The embedded DNS resolver on its own: answers from a lookup function, forwarding, SERVFAIL,
and the resolv.conf a user-network container gets. No sockets (upstreams are faked)."""

from __future__ import annotations

import asyncio

import pytest
from dnslib import QTYPE, RCODE, DNSRecord

from dockyard.networks import dns

NAMES = {"web": ["10.5.0.2"], "db": ["10.5.0.3"], "cache-alias": ["10.5.0.3"], "0123456789ab": ["10.5.0.2"]}


def _ask(resolver: dns.Resolver, name: str, qtype: str = "A") -> DNSRecord:
    data = asyncio.run(resolver.answer(DNSRecord.question(name, qtype).pack()))
    assert data is not None
    return DNSRecord.parse(data)


def test_known_names_answer_with_their_addresses():
    r = dns.Resolver(lambda n: NAMES.get(n), upstreams=lambda: [])
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
    r = dns.Resolver(lambda n: NAMES.get(n), upstreams=lambda: [])
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
    r = dns.Resolver(lambda n: NAMES.get(n), upstreams=lambda: ["192.0.2.1", "127.0.0.53"],
                     client_upstreams={"10.5.0.3": ["203.0.113.9"]}.get)
    reply = _ask(r, "example.org")
    assert [str(rr.rdata) for rr in reply.rr] == ["198.51.100.7"]
    assert asked == ["192.0.2.1", "127.0.0.53"]
    # a container with its own --dns servers is forwarded to those
    asked.clear()
    asyncio.run(r.answer(DNSRecord.question("example.org").pack(), "10.5.0.3"))
    assert asked == ["203.0.113.9"]


def test_garbage_is_dropped():
    r = dns.Resolver(lambda n: None, upstreams=lambda: [])
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
    r = dns.Resolver(lambda n: NAMES.get(n), upstreams=lambda: [])
    reply = _ask(r, "web", "ANY")
    assert reply.rr and reply.rr[0].rtype == QTYPE.A


def test_ptr_for_the_network_addresses():
    r = dns.Resolver(lambda n: None, upstreams=lambda: [],
                     reverse={"10.5.0.2": ["web.front"]}.get)
    reply = _ask(r, "2.0.5.10.in-addr.arpa", "PTR")
    assert [str(rr.rdata) for rr in reply.rr] == ["web.front."]
    # other addresses go upstream (none here: SERVFAIL)
    assert _ask(r, "9.0.5.10.in-addr.arpa", "PTR").header.rcode == RCODE.SERVFAIL
