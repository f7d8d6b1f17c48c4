"""Name resolution on user-defined networks (the embedded DNS at 127.0.0.11 inside each
container) with the real docker CLI, and one container's resolver on its own in a namespace the
test made: UDP and TCP through the DNAT of 127.0.0.11:53, forwarding, port 53 left free.

Traffic goes only to loopback, to namespaces the tests created and to addresses on networks
the tests created."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import struct
import subprocess
import threading
import uuid

import pytest
from dnslib import RCODE, RR, DNSRecord

from dockyard.networks import dns, netns
from dockyard.testing.daemon import wait_for

pytestmark = pytest.mark.privileged


def ok(d, *args: str) -> str:
    r = d.docker(*args)
    assert r.returncode == 0, f"docker {' '.join(args)}: {r.stderr.decode()}"
    return r.stdout.decode().strip()


def _user_network(d):
    """A user network for one test; its containers and it are removed afterwards."""
    name = f"dnstest-{uuid.uuid4().hex[:8]}"
    ok(d, "network", "create", name)
    yield name
    for cid in d.docker("ps", "-aq", "--filter", f"network={name}").stdout.decode().split():
        d.docker("rm", "-f", cid)
    d.docker("network", "rm", name)


@pytest.fixture
def net(d):
    yield from _user_network(d)


def test_containers_resolve_each_other_by_name_alias_and_id(d, net):
    a = ok(d, "run", "-d", "--name", f"{net}-a", "--network", net, "--network-alias", "alpha",
           "busybox", "sleep", "300")
    b = ok(d, "run", "-d", "--name", f"{net}-b", "--network", net, "busybox", "sleep", "300")
    a_ip = json.loads(ok(d, "inspect", a))[0]["NetworkSettings"]["Networks"][net]["IPAddress"]
    # Docker's file: the embedded resolver only, ndots:0, the host's search and options
    assert ok(d, "exec", b, "cat", "/etc/resolv.conf") + "\n" == dns.internal_resolv_conf({})
    assert a_ip in ok(d, "exec", b, "nslookup", f"{net}-a", "127.0.0.11").split("Name:", 1)[1]
    for name in (f"{net}-a", "alpha", a[:12], f"{net}-A".upper()):
        out = ok(d, "exec", b, "ping", "-c1", "-W2", name)
        assert f"({a_ip})" in out, out
    out = ok(d, "exec", b, "nslookup", "alpha")
    assert a_ip in out.split("Name:", 1)[1]
    assert f"{net}-a.{net}" in ok(d, "exec", b, "nslookup", a_ip)  # PTR, as Docker answers it
    # b resolves a, and a resolves b
    assert ok(d, "exec", a, "ping", "-c1", "-W2", f"{net}-b")


def _no_dns_at(address: str, namespace: str | None = None) -> None:
    """Nothing answers DNS at ``address:53`` (port unreachable, or silence), asked from the
    host or from inside ``namespace``."""
    def make() -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(2)
        s.connect((address, 53))
        return s

    with (netns.run_in(namespace, make) if namespace else make()) as s:
        s.send(DNSRecord.question("anything").pack())
        with pytest.raises(OSError):
            s.recv(512)


def test_default_bridge_has_no_embedded_dns(d, net):
    """As in Docker: the host's resolv.conf without loopback servers, nothing at 127.0.0.11 in
    the container, nothing on the gateways (no name is asked upstream: that would leave the host).
    Since the resolver lives in the containers, a user network's gateway serves no DNS either."""
    from dockyard.containers import etcfiles

    a = ok(d, "run", "-d", "--name", f"{net}-plain", "busybox", "sleep", "300")
    user = ok(d, "run", "-d", "--network", net, "busybox", "sleep", "300")
    try:
        assert ok(d, "exec", a, "cat", "/etc/resolv.conf") + "\n" == etcfiles.resolv_conf({})
        info = json.loads(ok(d, "inspect", a))[0]["NetworkSettings"]
        assert info["Gateway"]
        _no_dns_at(info["Gateway"])
        _no_dns_at(dns.ADDRESS, info["SandboxKey"])
        _no_dns_at(_gateway(d, net))
    finally:
        d.docker("rm", "-f", a, user)


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


def _udp_ask(s: socket.socket, name: str, qtype: str = "A") -> DNSRecord:
    s.send(DNSRecord.question(name, qtype).pack())
    return DNSRecord.parse(s.recv(4096))


def _tcp_ask(s: socket.socket, name: str) -> DNSRecord:
    q = DNSRecord.question(name).pack()
    s.sendall(struct.pack("!H", len(q)) + q)
    f = s.makefile("rb")
    size = struct.unpack("!H", f.read(2))[0]
    return DNSRecord.parse(f.read(size))


def test_resolver_in_a_namespace_udp_tcp_forwarding_and_port_53_free(tmp_path):
    """One container's resolver in a namespace made here: UDP and TCP to 127.0.0.11:53 reach it
    through the DNAT rules, unknown names go upstream (from the host side: the upstream is on
    the host's loopback), and port 53 itself stays free for the container's own server."""
    path = tmp_path / "ns"
    netns.create(path)

    def client(kind: int, address: str = dns.ADDRESS, port: int = 53) -> socket.socket:
        s = socket.socket(socket.AF_INET, kind)
        s.settimeout(10)
        s.connect((address, port))
        return s

    async def main() -> None:
        loop = asyncio.get_running_loop()
        up, _ = await loop.create_datagram_endpoint(_Upstream, local_addr=("127.0.0.1", 0))
        upstream = ("127.0.0.1", up.get_extra_info("sockname")[1])
        server = dns.ContainerDNS(dns.Resolver({"web": ["10.9.0.2"]}.get, upstreams=lambda: [upstream]))
        await server.start(path)
        try:
            # a process of the container binds 0.0.0.0:53 (UDP and TCP) beside the resolver
            own_udp = netns.run_in(path, lambda: _bound(socket.SOCK_DGRAM))
            own_tcp = netns.run_in(path, lambda: _bound(socket.SOCK_STREAM))
            try:
                udp = await asyncio.to_thread(netns.run_in, path, lambda: client(socket.SOCK_DGRAM))
                tcp = await asyncio.to_thread(netns.run_in, path, lambda: client(socket.SOCK_STREAM))
                with udp, tcp:
                    for ask in (_udp_ask, _tcp_ask):
                        r = await asyncio.to_thread(ask, udp if ask is _udp_ask else tcp, "web")
                        assert [str(x.rdata) for x in r.rr] == ["10.9.0.2"]
                        r = await asyncio.to_thread(ask, udp if ask is _udp_ask else tcp, "outside.example")
                        assert [str(x.rdata) for x in r.rr] == ["192.0.2.44"]
                        r = await asyncio.to_thread(ask, udp if ask is _udp_ask else tcp, "nothing.example")
                        assert r.header.rcode == RCODE.NXDOMAIN
                # the container's own server gets what is not 127.0.0.11:53
                probe = netns.run_in(path, lambda: client(socket.SOCK_DGRAM, "127.0.0.1"))
                with probe:
                    probe.send(b"ping")
                    own_udp.settimeout(10)
                    assert own_udp.recv(16) == b"ping"
            finally:
                own_udp.close()
                own_tcp.close()
        finally:
            server.close()
            up.close()
        # closed: nothing answers at 127.0.0.11 any more (the rules still point at the old ports)
        _no_dns_at(dns.ADDRESS, str(path))

    try:
        asyncio.run(main())
    finally:
        netns.remove(path)


def _bound(kind: int) -> socket.socket:
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("0.0.0.0", 53))
    if kind == socket.SOCK_STREAM:
        s.listen(1)
    return s


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
    from dockyard.containers import etcfiles

    a = ok(d, "run", "-d", "--name", f"{net}-late", "busybox", "sleep", "300")  # default bridge
    assert _nameserver(d, a) == etcfiles.resolv_conf({}).splitlines()[0]
    ok(d, "network", "connect", "--alias", "latecomer", net, a)
    # its first user network: the resolver starts in its namespace and the file names it (Docker)
    assert ok(d, "exec", a, "cat", "/etc/resolv.conf") + "\n" == dns.internal_resolv_conf({})
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


class _CountingUpstream:
    """A resolver on 127.0.0.153:53 (loopback) in a thread that knows outside.example and
    counts the questions it gets."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.153", 53))
        self.sock.settimeout(0.2)
        self.asked: list[str] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                data, addr = self.sock.recvfrom(4096)
            except OSError:  # the timeout: look at the stop flag
                continue
            q = DNSRecord.parse(data)
            self.asked.append(str(q.q.qname))
            reply = q.reply()
            reply.add_answer(*RR.fromZone(f"{q.q.qname} 60 A 192.0.2.44"))
            self.sock.sendto(reply.pack(), addr)

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(5)
        self.sock.close()


def test_nothing_is_forwarded_from_internal_networks(d):
    """CVE-2024-29018, as moby fixed it: the daemon forwards from the host's namespace, so a
    container only on --internal networks gets REFUSED for outside names, even with --dns."""
    name = f"dnsint-{uuid.uuid4().hex[:8]}"
    upstream = _CountingUpstream()
    ok(d, "network", "create", "--internal", name)
    try:
        inside = ok(d, "run", "-d", "--network", name, "--dns", "127.0.0.153", "busybox", "sleep", "300")
        r = d.docker("exec", inside, "nslookup", "outside.example")
        assert r.returncode != 0 and "192.0.2.44" not in r.stdout.decode(), r.stdout.decode()
        assert upstream.asked == []
        # the same container with a network that reaches out: forwarded to its --dns server
        ok(d, "network", "connect", "bridge", inside)
        assert "192.0.2.44" in ok(d, "exec", inside, "nslookup", "outside.example")
        assert upstream.asked
    finally:
        upstream.close()
        for cid in d.docker("ps", "-aq", "--filter", f"network={name}").stdout.decode().split():
            d.docker("rm", "-f", cid)
        d.docker("network", "rm", name)


# -- containers on several user networks ---------------------------------------------------------
# Askers get ``--dns 127.0.0.1``: a name unknown to them is forwarded to the host's loopback,
# where nothing answers (or a test resolver does), so negative checks are quick and stay local.


@pytest.fixture
def net2(d):
    yield from _user_network(d)


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
    assert _nameserver(d, both) == "nameserver 127.0.0.11"
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
    conf = dns.internal_resolv_conf({"DnsOptions": ["attempts:2"]})
    assert ok(d, "exec", c, "cat", "/etc/resolv.conf") + "\n" == conf
    # disconnected from its first network: the same file, the same resolver, net's names gone
    ok(d, "network", "disconnect", net, c)
    assert ok(d, "exec", c, "cat", "/etc/resolv.conf") + "\n" == conf
    _resolves(d, c, f"{net2}-only", _ip(d, b, net2))
    assert ok(d, "exec", c, "ping", "-c1", "-W2", f"{net2}-only")
    assert d.docker("exec", c, "nslookup", f"{net}-only").returncode != 0
    # no user network left: as in Docker, the resolver stays until the container stops (it
    # forwards only now) and the file is left as it is ...
    ok(d, "network", "disconnect", net2, c)
    assert ok(d, "exec", c, "cat", "/etc/resolv.conf") + "\n" == conf
    assert d.docker("exec", c, "nslookup", f"{net2}-only").returncode != 0
    # ... and a restart without a user network gives the host-style file with its --dns servers
    ok(d, "restart", "-t", "0", c)
    conf = ok(d, "exec", c, "cat", "/etc/resolv.conf") + "\n"
    assert conf == etcfiles.resolv_conf({"Dns": ["127.0.0.1"], "DnsOptions": ["attempts:2"]})


def test_default_bridge_container_connected_to_two_user_networks(d, net, net2):
    b = ok(d, "run", "-d", "--name", f"{net2}-only", "--network", net2, "busybox", "sleep", "300")
    c = ok(d, "run", "-d", "--name", f"{net}-roamer", "busybox", "sleep", "300")  # default bridge
    ok(d, "network", "connect", net, c)
    assert _nameserver(d, c) == "nameserver 127.0.0.11"
    ok(d, "network", "connect", net2, c)
    assert _nameserver(d, c) == "nameserver 127.0.0.11"
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


# -- the resolver inside the container: its own port 53, fds, live-restore -------------------------


def _sandbox(d, container: str) -> str:
    return json.loads(ok(d, "inspect", container))[0]["NetworkSettings"]["SandboxKey"]


OWN_DNS_PORT_HTTPD = "mkdir -p /www && echo own-53 > /www/index.html && exec httpd -f -p 53 -h /www"


def test_container_with_its_own_server_on_port_53(d, net):
    """A container listening on 0.0.0.0:53 itself (TCP: busybox httpd; UDP: a socket bound in
    its namespace by the test, as a dnsmasq would) starts, its listeners get what is sent to
    port 53 of its other addresses, and 127.0.0.11:53 (UDP and TCP) is still the resolver."""
    peer = ok(d, "run", "-d", "--name", f"{net}-peer", "--network", net, "busybox", "sleep", "300")
    c = ok(d, "run", "-d", "--name", f"{net}-own", "--network", net, "busybox", "sh", "-c", OWN_DNS_PORT_HTTPD)
    own_ip = _ip(d, c, net)

    def http() -> str:
        r = d.docker("exec", c, "sh", "-c", "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc 127.0.0.1 53")
        return r.stdout.decode() if r.returncode == 0 else ""

    assert "own-53" in wait_for(http, timeout=60)
    _resolves(d, c, f"{net}-peer", _ip(d, peer, net))
    assert _ip(d, peer, net) in ok(d, "exec", c, "nslookup", f"{net}-peer", "127.0.0.11").split("Name:", 1)[1]
    ns = _sandbox(d, c)
    own_udp = netns.run_in(ns, lambda: _bound(socket.SOCK_DGRAM))  # the container's UDP port 53

    def client(kind: int, address: str) -> socket.socket:
        s = socket.socket(socket.AF_INET, kind)
        s.settimeout(10)
        s.connect((address, 53))
        return s

    with own_udp, netns.run_in(ns, lambda: client(socket.SOCK_DGRAM, own_ip)) as probe:
        probe.send(b"to-the-container")
        own_udp.settimeout(10)
        assert own_udp.recv(64) == b"to-the-container"
        with netns.run_in(ns, lambda: client(socket.SOCK_DGRAM, dns.ADDRESS)) as udp:
            assert [str(x.rdata) for x in _udp_ask(udp, f"{net}-peer").rr] == [_ip(d, peer, net)]
        with netns.run_in(ns, lambda: client(socket.SOCK_STREAM, dns.ADDRESS)) as tcp:
            assert [str(x.rdata) for x in _tcp_ask(tcp, f"{net}-peer").rr] == [_ip(d, peer, net)]


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_no_fd_leak_over_50_start_stop_cycles(d, client, net):
    """Each start opens the resolver's sockets in the container's namespace; each stop must close
    them (else the namespace lives on too). The daemon's fd count comes back to where it was."""
    pid = d.proc.pid
    container = client.containers.create("busybox", ["true"], network=net)
    try:
        def cycle() -> None:
            container.start()
            assert container.wait()["StatusCode"] == 0

        cycle()  # warm: lazily opened things of the daemon and of the client's connection
        before = _fds(pid)
        for _ in range(50):
            cycle()
        # the last stop is recorded (wait returned); fds of requests in flight settle
        wait_for(lambda: _fds(pid) <= before, timeout=60)
    finally:
        container.remove(force=True)


def test_resolution_survives_daemon_kill(make_daemon, busybox_tar):
    """Live-restore: after kill -9 of the daemon the containers run on; the new daemon opens
    their resolvers again (new ports, rules replaced) and names resolve as before."""
    d = make_daemon()
    d.load(busybox_tar)
    name = f"dnskill-{uuid.uuid4().hex[:6]}"
    try:
        ok(d, "network", "create", name)
        a = ok(d, "run", "-d", "--name", f"{name}-a", "--network", name, "busybox", "sleep", "300")
        b = ok(d, "run", "-d", "--network", name, "--dns", "127.0.0.1", "busybox", "sleep", "300")
        _resolves(d, b, f"{name}-a", _ip(d, a, name))
        d.kill()
        d.start()
        assert ok(d, "inspect", "-f", "{{.State.Running}}", b) == "true"
        _resolves(d, b, f"{name}-a", _ip(d, a, name))
        _resolves(d, a, b[:12], _ip(d, b, name))
        assert ok(d, "exec", b, "cat", "/etc/resolv.conf").splitlines()[0] == "nameserver 127.0.0.11"
    finally:
        if d.ping():
            for c in d.docker("ps", "-aq").stdout.decode().split():
                d.docker("rm", "-f", c)
            d.docker("network", "rm", name)


# -- issue 15: legacy links given at network connect are names in the embedded DNS ---------------


def _subnet_network(d, subnet: str):
    name = f"dnslink-{uuid.uuid4().hex[:8]}"
    ok(d, "network", "create", "--subnet", subnet, name)
    return name


def test_links_at_network_connect_are_names_for_that_container_only(d, client):
    """``network connect --link target:alias`` (EndpointConfig.Links): stored as given, the
    target need not exist yet (docker-py's test), and then the alias resolves to the target's
    address on that network for the linking container only; no /etc/hosts line."""
    net = _subnet_network(d, "10.233.9.0/24")
    try:
        a = ok(d, "run", "-d", "--network", net, "busybox", "sleep", "300")
        ok(d, "network", "disconnect", net, a)
        upstream = f"{net}-upstream"
        ok(d, "network", "connect", "--link", f"{upstream}:bar", net, a)
        settings = json.loads(ok(d, "inspect", a))[0]["NetworkSettings"]["Networks"][net]
        assert settings["Links"] == [f"{upstream}:bar"]
        assert d.docker("exec", a, "nslookup", "bar").returncode != 0  # no such container yet
        target = ok(d, "run", "-d", "--name", upstream, "--network", net, "busybox", "sleep", "300")
        target_ip = json.loads(ok(d, "inspect", target))[0]["NetworkSettings"]["Networks"][net]["IPAddress"]
        assert target_ip in ok(d, "exec", a, "nslookup", "bar").split("Name:", 1)[1]
        assert f"({target_ip})" in ok(d, "exec", a, "ping", "-c1", "-W2", "bar")
        assert "bar" not in ok(d, "exec", a, "cat", "/etc/hosts")
        other = ok(d, "run", "-d", "--network", net, "busybox", "sleep", "300")
        assert d.docker("exec", other, "nslookup", "bar").returncode != 0  # only the linking container
        assert d.docker("exec", target, "nslookup", "bar").returncode != 0
        # docker-py's test_create_with_links: at create too, to a container that does not exist
        created = client.api.create_container(
            "busybox", "sleep 300", host_config=client.api.create_host_config(network_mode=net),
            networking_config=client.api.create_networking_config(
                {net: client.api.create_endpoint_config(links=[(f"{net}-later", "baz")])}))["Id"]
        client.api.start(created)
        later = ok(d, "run", "-d", "--name", f"{net}-later", "--network", net, "busybox", "sleep", "300")
        later_ip = json.loads(ok(d, "inspect", later))[0]["NetworkSettings"]["Networks"][net]["IPAddress"]
        assert later_ip in ok(d, "exec", created, "nslookup", "baz").split("Name:", 1)[1]
    finally:
        for cid in d.docker("ps", "-aq", "--filter", f"network={net}").stdout.decode().split():
            d.docker("rm", "-f", cid)
        d.docker("network", "rm", net)
