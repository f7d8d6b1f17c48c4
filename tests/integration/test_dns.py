"""Name resolution on user-defined networks (the embedded DNS server) with the real docker CLI,
and the server itself on loopback: UDP and TCP, forwarding to an upstream, SERVFAIL.

Traffic goes only to loopback and to addresses on networks the tests created."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import struct
import subprocess
import uuid

import pytest
from dnslib import RCODE, RR, DNSRecord

from dockyard.networks import dns

pytestmark = pytest.mark.privileged


def ok(d, *args: str) -> str:
    r = d.docker(*args)
    assert r.returncode == 0, f"docker {' '.join(args)}: {r.stderr.decode()}"
    return r.stdout.decode().strip()


@pytest.fixture
def net(d):
    name = f"dnstest-{uuid.uuid4().hex[:8]}"
    ok(d, "network", "create", name)
    yield name
    for cid in d.docker("ps", "-aq", "--filter", f"network={name}").stdout.decode().split():
        d.docker("rm", "-f", cid)
    d.docker("network", "rm", name)


def test_containers_resolve_each_other_by_name_alias_and_id(d, net):
    a = ok(d, "run", "-d", "--name", f"{net}-a", "--network", net, "--network-alias", "alpha",
           "busybox", "sleep", "300")
    b = ok(d, "run", "-d", "--name", f"{net}-b", "--network", net, "busybox", "sleep", "300")
    a_ip = json.loads(ok(d, "inspect", a))[0]["NetworkSettings"]["Networks"][net]["IPAddress"]
    gateway = json.loads(ok(d, "inspect", a))[0]["NetworkSettings"]["Networks"][net]["Gateway"]
    assert ok(d, "exec", b, "cat", "/etc/resolv.conf").splitlines()[0] == f"nameserver {gateway}"
    for name in (f"{net}-a", "alpha", a[:12], f"{net}-A".upper()):
        out = ok(d, "exec", b, "ping", "-c1", "-W2", name)
        assert f"({a_ip})" in out, out
    out = ok(d, "exec", b, "nslookup", "alpha")
    assert a_ip in out.split("Name:", 1)[1]
    assert f"{net}-a.{net}" in ok(d, "exec", b, "nslookup", a_ip)  # PTR, as Docker answers it
    # b resolves a, and a resolves b
    assert ok(d, "exec", a, "ping", "-c1", "-W2", f"{net}-b")


def test_default_bridge_has_no_embedded_dns(d, net):
    """As in Docker: the host's resolv.conf without loopback servers, and nothing listening on
    the default bridge's gateway (no name is asked: that would leave the host)."""
    from dockyard.containers import etcfiles

    a = ok(d, "run", "-d", "--name", f"{net}-plain", "busybox", "sleep", "300")
    try:
        assert ok(d, "exec", a, "cat", "/etc/resolv.conf") + "\n" == etcfiles.resolv_conf({})
        gateway = json.loads(ok(d, "inspect", a))[0]["NetworkSettings"]["Gateway"]
        assert gateway
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(2)
            s.connect((gateway, 53))
            s.send(DNSRecord.question(f"{net}-plain").pack())
            with pytest.raises(OSError):  # port unreachable (or silence)
                s.recv(512)
    finally:
        d.docker("rm", "-f", a)


def test_disconnected_container_is_no_longer_resolved(d, net):
    a = ok(d, "run", "-d", "--name", f"{net}-gone", "--network", net, "busybox", "sleep", "300")
    b = ok(d, "run", "-d", "--network", net, "busybox", "sleep", "300")
    assert ok(d, "exec", b, "ping", "-c1", "-W2", f"{net}-gone")
    ok(d, "rm", "-f", a)
    assert d.docker("exec", b, "ping", "-c1", "-W1", f"{net}-gone").returncode != 0


# -- the server on loopback -------------------------------------------------------------------


class _Upstream(asyncio.DatagramProtocol):
    """A resolver that knows one name."""

    def connection_made(self, transport):  # noqa: ANN001
        self.transport = transport

    def datagram_received(self, data, addr):  # noqa: ANN001
        q = DNSRecord.parse(data)
        reply = q.reply()
        if str(q.q.qname) == "outside.example.":
            reply.add_answer(*RR.fromZone("outside.example. 60 A 192.0.2.44"))
        else:
            reply.header.rcode = RCODE.NXDOMAIN
        self.transport.sendto(reply.pack(), addr)


def test_server_udp_tcp_and_forwarding():
    async def main() -> None:
        loop = asyncio.get_running_loop()
        up, _ = await loop.create_datagram_endpoint(_Upstream, local_addr=("127.0.0.1", 0))
        upstream = ("127.0.0.1", up.get_extra_info("sockname")[1])
        names = {"web": ["10.9.0.2"]}
        server = dns.DNSServer("127.0.0.1", lambda n, client: names.get(n), upstreams=lambda: [upstream], port=0)
        await server.start()
        try:
            async def udp(name: str) -> DNSRecord:
                fut = loop.create_future()

                class C(asyncio.DatagramProtocol):
                    def datagram_received(self, data, addr):  # noqa: ANN001
                        fut.set_result(data)

                t, _ = await loop.create_datagram_endpoint(C, remote_addr=("127.0.0.1", server.port))
                t.sendto(DNSRecord.question(name).pack())
                try:
                    return DNSRecord.parse(await asyncio.wait_for(fut, 10))
                finally:
                    t.close()

            async def tcp(name: str) -> DNSRecord:
                r, w = await asyncio.open_connection("127.0.0.1", server.port)
                q = DNSRecord.question(name).pack()
                w.write(struct.pack("!H", len(q)) + q)
                size = struct.unpack("!H", await r.readexactly(2))[0]
                data = await r.readexactly(size)
                w.close()
                return DNSRecord.parse(data)

            for ask in (udp, tcp):
                assert [str(x.rdata) for x in (await ask("web")).rr] == ["10.9.0.2"]
                assert [str(x.rdata) for x in (await ask("outside.example")).rr] == ["192.0.2.44"]
                assert (await ask("nothing.example")).header.rcode == RCODE.NXDOMAIN
        finally:
            server.close()
            up.close()

    asyncio.run(main())


def test_dockyard_cli_network_alias(d, net):
    r = d.cli("run", "-d", "--network", net, "--network-alias", "beta", "busybox", "sleep", "300")
    assert r.returncode == 0, r.stderr.decode()
    b = ok(d, "run", "-d", "--network", net, "busybox", "sleep", "300")
    out = ok(d, "exec", b, "nslookup", "beta")
    ip = json.loads(ok(d, "inspect", r.stdout.decode().strip()))[0]["NetworkSettings"]["Networks"][net]["IPAddress"]
    assert ip in out.split("Name:", 1)[1]


def test_outside_names_are_forwarded_from_the_host_side(d, net):
    """``--dns 127.0.0.1``: a resolver on the host's loopback, which the container itself could
    never reach; the embedded server forwards to it from the host."""
    import threading

    up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        up.bind(("127.0.0.1", 53))
    except OSError:
        up.close()
        pytest.skip("port 53 on loopback is taken")
    stop = threading.Event()

    def serve() -> None:
        up.settimeout(0.2)
        while not stop.is_set():
            try:
                data, addr = up.recvfrom(2048)
            except OSError:
                continue
            q = DNSRecord.parse(data)
            reply = q.reply()
            if str(q.q.qname) == "outside.example.":
                reply.add_answer(*RR.fromZone("outside.example. 60 A 192.0.2.44"))
            else:
                reply.header.rcode = RCODE.NXDOMAIN
            up.sendto(reply.pack(), addr)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        c = ok(d, "run", "-d", "--network", net, "--dns", "127.0.0.1", "busybox", "sleep", "300")
        out = ok(d, "exec", c, "nslookup", "outside.example")
        assert "192.0.2.44" in out.split("Name:", 1)[1]
        assert d.docker("exec", c, "nslookup", "nothing.example").returncode != 0
    finally:
        stop.set()
        t.join()
        up.close()


def test_connected_container_is_resolved_and_resolves(d, net):
    a = ok(d, "run", "-d", "--name", f"{net}-late", "busybox", "sleep", "300")  # default bridge
    ok(d, "network", "connect", "--alias", "latecomer", net, a)
    b = ok(d, "run", "-d", "--name", f"{net}-peer", "--network", net, "busybox", "sleep", "300")
    a_ip = json.loads(ok(d, "inspect", a))[0]["NetworkSettings"]["Networks"][net]["IPAddress"]
    for name in (f"{net}-late", "latecomer"):
        assert a_ip in ok(d, "exec", b, "nslookup", name).split("Name:", 1)[1]
    # and the connected container now asks the embedded server too
    assert ok(d, "exec", a, "ping", "-c1", "-W2", f"{net}-peer")


def test_names_resolve_on_an_internal_network(d):
    name = f"dnsint-{uuid.uuid4().hex[:8]}"
    ok(d, "network", "create", "--internal", name)
    try:
        ok(d, "run", "-d", "--name", f"{name}-a", "--network", name, "busybox", "sleep", "300")
        b = ok(d, "run", "-d", "--network", name, "busybox", "sleep", "300")
        assert ok(d, "exec", b, "ping", "-c1", "-W2", f"{name}-a")
    finally:
        for cid in d.docker("ps", "-aq", "--filter", f"network={name}").stdout.decode().split():
            d.docker("rm", "-f", cid)
        d.docker("network", "rm", name)


# -- containers on several user networks ---------------------------------------------------------
# Askers get ``--dns 127.0.0.1``: a name unknown to them is forwarded to the host's loopback,
# where nothing answers (or a test resolver does), so negative checks are quick and stay local.


@pytest.fixture
def net2(d):
    name = f"dnstest-{uuid.uuid4().hex[:8]}"
    ok(d, "network", "create", name)
    yield name
    for cid in d.docker("ps", "-aq", "--filter", f"network={name}").stdout.decode().split():
        d.docker("rm", "-f", cid)
    d.docker("network", "rm", name)


def _ip(d, container: str, network: str) -> str:
    return json.loads(ok(d, "inspect", container))[0]["NetworkSettings"]["Networks"][network]["IPAddress"]


def _gateway(d, network: str) -> str:
    return json.loads(ok(d, "network", "inspect", network))[0]["IPAM"]["Config"][0]["Gateway"]


def _resolves(d, asker: str, name: str, ip: str) -> None:
    out = ok(d, "exec", asker, "nslookup", name)
    assert ip in out.split("Name:", 1)[1], out


def _nameserver(d, container: str) -> str:
    return ok(d, "exec", container, "cat", "/etc/resolv.conf").splitlines()[0]


def test_container_on_two_networks_resolves_names_on_both(d, net, net2):
    a = ok(d, "run", "-d", "--name", f"{net}-only", "--network", net, "busybox", "sleep", "300")
    b = ok(d, "run", "-d", "--name", f"{net2}-only", "--network", net2, "--network-alias", "bee",
           "busybox", "sleep", "300")
    # created on net, connected to net2 before it starts: both networks from the first start
    both = ok(d, "create", "--name", f"{net}-both", "--network", net, "--dns", "127.0.0.1",
              "busybox", "sleep", "300")
    ok(d, "network", "connect", "--alias", "twofold", net2, both)
    ok(d, "start", both)
    assert _nameserver(d, both) == f"nameserver {_gateway(d, net)}"
    _resolves(d, both, f"{net2}-only", _ip(d, b, net2))
    _resolves(d, both, "bee", _ip(d, b, net2))
    _resolves(d, both, b[:12], _ip(d, b, net2))
    _resolves(d, both, f"{net}-only", _ip(d, a, net))
    assert ok(d, "exec", both, "ping", "-c1", "-W2", f"{net2}-only")
    # PTR of an address on the second network
    assert f"{net2}-only.{net2}" in ok(d, "exec", both, "nslookup", _ip(d, b, net2))
    # the others see it at its address on the network they share (its alias on net2 included)
    _resolves(d, b, f"{net}-both", _ip(d, both, net2))
    _resolves(d, b, "twofold", _ip(d, both, net2))
    _resolves(d, a, f"{net}-both", _ip(d, both, net))
    # a container on net only does not see net2's containers through its server
    lonely = ok(d, "run", "-d", "--network", net, "--dns", "127.0.0.1", "busybox", "sleep", "300")
    assert d.docker("exec", lonely, "nslookup", f"{net2}-only").returncode != 0


def test_network_connect_at_runtime_then_disconnect_from_the_first(d, net, net2):
    from dockyard.containers import etcfiles

    a = ok(d, "run", "-d", "--name", f"{net}-only", "--network", net, "busybox", "sleep", "300")
    b = ok(d, "run", "-d", "--name", f"{net2}-only", "--network", net2, "busybox", "sleep", "300")
    c = ok(d, "run", "-d", "--network", net, "--dns", "127.0.0.1", "--dns-option", "attempts:2",
           "busybox", "sleep", "300")
    _resolves(d, c, f"{net}-only", _ip(d, a, net))
    ok(d, "network", "connect", net2, c)  # at runtime: net2's names resolve at once
    _resolves(d, c, f"{net2}-only", _ip(d, b, net2))
    # disconnected from the network its resolv.conf named: it now asks net2's server
    ok(d, "network", "disconnect", net, c)
    assert _nameserver(d, c) == f"nameserver {_gateway(d, net2)}"
    assert "options attempts:2" in ok(d, "exec", c, "cat", "/etc/resolv.conf")
    _resolves(d, c, f"{net2}-only", _ip(d, b, net2))
    assert ok(d, "exec", c, "ping", "-c1", "-W2", f"{net2}-only")
    assert d.docker("exec", c, "nslookup", f"{net}-only").returncode != 0
    # no user network left: the host-style file with its --dns servers, as on the default bridge
    ok(d, "network", "disconnect", net2, c)
    conf = ok(d, "exec", c, "cat", "/etc/resolv.conf") + "\n"
    assert conf == etcfiles.resolv_conf({"Dns": ["127.0.0.1"], "DnsOptions": ["attempts:2"]})


def test_default_bridge_container_connected_to_two_user_networks(d, net, net2):
    b = ok(d, "run", "-d", "--name", f"{net2}-only", "--network", net2, "busybox", "sleep", "300")
    c = ok(d, "run", "-d", "--name", f"{net}-roamer", "busybox", "sleep", "300")  # default bridge
    ok(d, "network", "connect", net, c)
    assert _nameserver(d, c) == f"nameserver {_gateway(d, net)}"
    ok(d, "network", "connect", net2, c)
    assert _nameserver(d, c) == f"nameserver {_gateway(d, net)}"
    _resolves(d, c, f"{net2}-only", _ip(d, b, net2))
    _resolves(d, b, f"{net}-roamer", _ip(d, c, net2))


COMPOSE_TWO_NETWORKS = """\
version: "3.8"
services:
  front:
    image: busybox
    command: sleep 300
    networks: [edge]
  back:
    image: busybox
    command: sleep 300
    networks:
      inner:
        aliases: [database]
  proxy:
    image: busybox
    command: sleep 300
    dns: 127.0.0.1
    networks: [edge, inner]
networks:
  edge:
  inner:
"""


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose is not installed")
def test_compose_service_on_two_networks_resolves_both(d, tmp_path):
    project = f"dy{uuid.uuid4().hex[:6]}"
    (tmp_path / "docker-compose.yml").write_text(COMPOSE_TWO_NETWORKS)
    env = {**os.environ, "DOCKER_HOST": d.url, "DOCKER_CONFIG": str(d.base / "docker-config"),
           "COMPOSE_INTERACTIVE_NO_CLI": "1"}

    def compose(*args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(["docker-compose", "-p", project, *args], cwd=tmp_path, env=env,
                              capture_output=True, timeout=180)

    try:
        r = compose("up", "-d")
        assert r.returncode == 0, r.stderr.decode()

        def cid(service: str) -> str:
            return ok(d, "ps", "-q", "--filter", f"label=com.docker.compose.project={project}",
                      "--filter", f"label=com.docker.compose.service={service}")

        proxy, front, back = cid("proxy"), cid("front"), cid("back")
        for name, target, network in (("front", front, "edge"), ("back", back, "inner"),
                                      ("database", back, "inner")):
            _resolves(d, proxy, name, _ip(d, target, f"{project}_{network}"))
        _resolves(d, front, "proxy", _ip(d, proxy, f"{project}_edge"))
        _resolves(d, back, "proxy", _ip(d, proxy, f"{project}_inner"))
    finally:
        r = compose("down")
    assert r.returncode == 0, r.stderr.decode()
