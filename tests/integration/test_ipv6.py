"""IPv6 networks as Docker's (``docker network create --ipv6``): IPAM of both families, the
bridge's IPv6 gateway, each container's IPv6 address and default route, ``--ip6``, NAT66 in the
engine's own ``ip6`` nftables table, isolation and ``--internal`` for IPv6 too, published ports
on ``[::1]``, and AAAA/PTR answers of the embedded DNS.

Traffic goes only to loopback, to namespaces the tests created and to addresses on networks the
tests created."""

from __future__ import annotations

import ipaddress
import json
import secrets
import socket
import subprocess
import uuid

import pytest

from dockyard.networks import netns
from dockyard.networks.service import instance_of
from dockyard.testing.daemon import wait_for

pytestmark = pytest.mark.privileged

HTTPD = "mkdir -p /www && echo hello-$HOSTNAME > /www/index.html && exec httpd -f -p 80 -h /www"


def ok(d, *args: str) -> str:
    r = d.docker(*args)
    assert r.returncode == 0, f"docker {' '.join(args)}: {r.stderr.decode()}"
    return r.stdout.decode().strip()


def inspect(d, name: str) -> dict:
    return json.loads(ok(d, "inspect", name))[0]


def random_subnet6() -> ipaddress.IPv6Network:
    """A unique-local /64 of its own for one test (no two tests, or test runs, share it)."""
    return ipaddress.IPv6Network((b"\xfd" + secrets.token_bytes(7) + b"\0" * 8, 64))


def free_subnet4() -> ipaddress.IPv4Network:
    """An IPv4 /24 no route of the host covers (the default pools may be taken by other daemons)."""
    from dockyard.networks import ipam

    routes = ipam.host_routes()
    while True:
        candidate = ipaddress.IPv4Network(f"10.{secrets.randbelow(200) + 20}.{secrets.randbelow(256)}.0/24")
        if not any(candidate.overlaps(r) for r in routes):
            return candidate


def create_net6(d, name: str, *extra: str) -> ipaddress.IPv6Network:
    subnet = random_subnet6()
    ok(d, "network", "create", "--ipv6", "--subnet", str(free_subnet4()), "--subnet", str(subnet), *extra, name)
    return subnet


def http_get(family: int, host: str, port: int) -> str:
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect((host, port))
            s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
    except OSError:
        return ""
    head, _, body = data.decode(errors="replace").partition("\r\n\r\n")
    return body.strip() if " 200 " in head.split("\r\n")[0] else ""


@pytest.fixture
def net6(d):
    """An IPv6 network (with its automatic IPv4 subnet) for one test."""
    name = f"v6-{uuid.uuid4().hex[:8]}"
    subnet = create_net6(d, name)
    yield name, subnet
    for cid in d.docker("ps", "-aq", "--filter", f"network={name}").stdout.decode().split():
        d.docker("rm", "-f", cid)
    d.docker("network", "rm", name)


def test_ipv6_network_inspect_addresses_ping_and_nc_by_name(d, net6):
    net, subnet = net6
    n = json.loads(ok(d, "network", "inspect", net))[0]
    assert n["EnableIPv6"] is True
    configs = n["IPAM"]["Config"]
    v6 = [c for c in configs if ":" in c["Subnet"]]
    v4 = [c for c in configs if ":" not in c["Subnet"]]
    assert len(v4) == 1 and v6 == [{"Subnet": str(subnet), "Gateway": str(subnet.network_address + 1)}], configs
    gw6 = str(subnet.network_address + 1)

    a = ok(d, "run", "-d", "--name", f"{net}-a", "--network", net, "busybox",
           "sh", "-c", "while true; do echo hello6 | nc -l -p 7000; done")
    b = ok(d, "run", "-d", "--name", f"{net}-b", "--network", net, "busybox", "sleep", "300")
    sa = inspect(d, a)["NetworkSettings"]["Networks"][net]
    addr_a = ipaddress.ip_address(sa["GlobalIPv6Address"])
    assert addr_a in subnet and sa["GlobalIPv6PrefixLen"] == 64 and sa["IPv6Gateway"] == gw6, sa
    assert sa["IPAddress"]  # both families
    containers = json.loads(ok(d, "network", "inspect", net))[0]["Containers"]
    assert containers[a]["IPv6Address"] == f"{addr_a}/64"

    # the container's own view: its address (usable at once, no DAD) and the default route
    addrs = ok(d, "exec", b, "ip", "-6", "addr", "show", "eth0")
    assert "/64 scope global" in addrs and "tentative" not in addrs, addrs
    assert f"default via {gw6}" in ok(d, "exec", b, "ip", "-6", "route")

    out = ok(d, "exec", b, "ping", "-6", "-c1", "-W5", f"{net}-a")
    assert f"({addr_a})" in out, out
    assert ok(d, "exec", b, "ping", "-6", "-c1", "-W5", gw6)  # the bridge's IPv6 gateway
    assert "hello6" in ok(d, "exec", b, "nc", "-w", "5", str(addr_a), "7000")
    assert "hello6" in ok(d, "exec", b, "nc", "-w", "5", f"{net}-a", "7000")


def test_embedded_dns_answers_aaaa_and_ip6_arpa_ptr(d, net6):
    net, subnet = net6
    a = ok(d, "run", "-d", "--name", f"{net}-a", "--network", net, "--network-alias", "alpha6",
           "busybox", "sleep", "300")
    b = ok(d, "run", "-d", "--name", f"{net}-b", "--network", net, "busybox", "sleep", "300")
    s = inspect(d, a)["NetworkSettings"]["Networks"][net]
    addr6, addr4 = s["GlobalIPv6Address"], s["IPAddress"]
    out = ok(d, "exec", b, "nslookup", "-type=aaaa", "alpha6", "127.0.0.11")
    answer = out.split("Name:", 1)[1] if "Name:" in out else out
    assert addr6 in answer and addr4 not in answer, out
    out = ok(d, "exec", b, "nslookup", "-type=a", f"{net}-a", "127.0.0.11")
    assert addr4 in out.split("Name:", 1)[1] and addr6 not in out, out
    # PTR of the IPv6 address, Docker's <container>.<network>
    assert f"{net}-a.{net}" in ok(d, "exec", b, "nslookup", addr6, "127.0.0.11")


def test_fixed_ip6_and_refusals(d, net6):
    net, subnet = net6
    fixed = str(subnet.network_address + 0x99)
    c = ok(d, "run", "-d", "--network", net, "--ip6", fixed, "busybox", "sleep", "300")
    s = inspect(d, c)["NetworkSettings"]["Networks"][net]
    assert s["GlobalIPv6Address"] == fixed and s["IPAMConfig"]["IPv6Address"] == fixed
    assert f"inet6 {fixed}/64" in ok(d, "exec", c, "ip", "-6", "addr", "show", "eth0")
    # the same address twice: Docker's conflict
    r = d.docker("run", "--rm", "--network", net, "--ip6", fixed, "busybox", "true")
    assert r.returncode != 0 and b"Address already in use" in r.stderr
    # outside the subnet, and on a network without IPv6: clear errors
    r = d.docker("run", "--rm", "--network", net, "--ip6", "fd00:dead::5", "busybox", "true")
    assert r.returncode != 0 and b"does not belong" in r.stderr, r.stderr
    plain = f"v4-{uuid.uuid4().hex[:8]}"
    ok(d, "network", "create", "--subnet", str(free_subnet4()), plain)
    try:
        r = d.docker("run", "--rm", "--network", plain, "--ip6", fixed, "busybox", "true")
        assert r.returncode != 0 and b"has no IPv6" in r.stderr, r.stderr
        assert json.loads(ok(d, "network", "inspect", plain))[0]["EnableIPv6"] is False
    finally:
        d.docker("network", "rm", plain)
    # an IPv6 subnet without --ipv6
    r = d.docker("network", "create", "--subnet", str(free_subnet4()), "--subnet", str(random_subnet6()),
                 f"bad-{uuid.uuid4().hex[:6]}")
    assert r.returncode != 0 and b"EnableIPv6" in r.stderr, r.stderr
