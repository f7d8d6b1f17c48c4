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


def free_subnet4(prefixlen: int = 24) -> ipaddress.IPv4Network:
    """An IPv4 /24 no route of the host covers (the default pools may be taken by other daemons)."""
    from dockyard.networks import ipam

    routes = ipam.host_routes()
    while True:
        candidate = ipaddress.IPv4Network(f"10.{secrets.randbelow(200) + 20}.{secrets.randbelow(256)}.0/{prefixlen}",
                                          strict=False)
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

    hosts = ok(d, "exec", a, "cat", "/etc/hosts")
    assert f"{addr_a}\t{a[:12]}" in hosts and f"{sa['IPAddress']}\t{a[:12]}" in hosts, hosts
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
    # moby's option spelling of --ipv6
    opt = f"v6o-{uuid.uuid4().hex[:6]}"
    ok(d, "network", "create", "-o", "com.docker.network.enable_ipv6=true", "--subnet", str(free_subnet4()), opt)
    try:
        assert json.loads(ok(d, "network", "inspect", opt))[0]["EnableIPv6"] is True
    finally:
        d.docker("network", "rm", opt)
    # an IPv6 subnet without --ipv6
    r = d.docker("network", "create", "--subnet", str(free_subnet4()), "--subnet", str(random_subnet6()),
                 f"bad-{uuid.uuid4().hex[:6]}")
    assert r.returncode != 0 and b"EnableIPv6" in r.stderr, r.stderr


def ip6_table(d, suffix: str = "") -> str:
    inst = instance_of(d.data_root)
    table = (f"dockyard_{inst}" if inst else "dockyard") + suffix
    return subprocess.run(["nft", "list", "table", "ip6", table], capture_output=True, text=True).stdout


def test_published_ports_on_ipv6_loopback_and_both_families(d, net6):
    net, subnet = net6
    c = ok(d, "run", "-d", "--network", net, "-p", "[::1]::80", "busybox", "sh", "-c", HTTPD)
    ports = inspect(d, c)["NetworkSettings"]["Ports"]["80/tcp"]
    assert len(ports) == 1 and ports[0]["HostIp"] == "::1", ports
    port = int(ports[0]["HostPort"])
    assert wait_for(lambda: http_get(socket.AF_INET6, "::1", port) == f"hello-{c[:12]}", timeout=15)
    assert http_get(socket.AF_INET, "127.0.0.1", port) == ""  # bound to ::1 only

    # every address on a network with IPv6: 0.0.0.0 and :: on the same port, as Docker 27
    e = ok(d, "run", "-d", "--network", net, "-p", "80", "busybox", "sh", "-c", HTTPD)
    ports = inspect(d, e)["NetworkSettings"]["Ports"]["80/tcp"]
    assert sorted(p["HostIp"] for p in ports) == ["0.0.0.0", "::"] and len({p["HostPort"] for p in ports}) == 1
    port = int(ports[0]["HostPort"])
    assert wait_for(lambda: http_get(socket.AF_INET6, "::1", port) == f"hello-{e[:12]}", timeout=15)
    assert http_get(socket.AF_INET, "127.0.0.1", port) == f"hello-{e[:12]}"
    addr6 = inspect(d, e)["NetworkSettings"]["Networks"][net]["GlobalIPv6Address"]
    assert f"tcp dport {port} dnat to [{addr6}]:80" in ip6_table(d, "_ports")  # other hosts: DNAT66
    ok(d, "rm", "-f", e)
    assert f"dport {port} " not in ip6_table(d, "_ports")


def test_ipv6_port_on_an_ipv4_only_network_is_proxied(d):
    name = f"v4-{uuid.uuid4().hex[:8]}"
    ok(d, "network", "create", "--subnet", str(free_subnet4()), name)
    try:
        c = ok(d, "run", "-d", "--network", name, "-p", "[::1]::80", "busybox", "sh", "-c", HTTPD)
        port = int(inspect(d, c)["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"])
        assert wait_for(lambda: http_get(socket.AF_INET6, "::1", port) == f"hello-{c[:12]}", timeout=15)
    finally:
        for cid in d.docker("ps", "-aq", "--filter", f"network={name}").stdout.decode().split():
            d.docker("rm", "-f", cid)
        d.docker("network", "rm", name)


@pytest.fixture
def outside():
    """A namespace of the test's own behind a routed veth (IPv6 only): the "internet"."""
    tag = uuid.uuid4().hex[:6]
    ns, host_end = f"v6out-{tag}", f"v6o{tag}"
    prefix = random_subnet6()
    host_ip, far_ip = prefix.network_address + 1, prefix.network_address + 2
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        cmds = [["ip", "link", "add", host_end, "type", "veth", "peer", "name", "eth0", "netns", ns],
                ["ip", "addr", "add", f"{host_ip}/64", "dev", host_end, "nodad"],
                ["ip", "link", "set", host_end, "up"],
                ["ip", "-n", ns, "addr", "add", f"{far_ip}/64", "dev", "eth0", "nodad"],
                ["ip", "-n", ns, "link", "set", "eth0", "up"], ["ip", "-n", ns, "link", "set", "lo", "up"]]
        for cmd in cmds:
            subprocess.run(cmd, check=True)
        yield ns, str(host_ip), str(far_ip)
    finally:
        subprocess.run(["ip", "link", "del", host_end], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def _serve_once(ns: str, port: int) -> subprocess.Popen:
    """A TCP server in ``ns`` that answers one client and prints the client's address."""
    code = ("import socket,sys; s=socket.socket(socket.AF_INET6); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1);"
            f"s.bind(('::', {port})); s.listen(); print('ready', flush=True); s.settimeout(30); c, a = s.accept();"
            "c.sendall(b'outside\\n'); c.close(); print(a[0], flush=True)")
    proc = subprocess.Popen(["ip", "netns", "exec", ns, "/usr/bin/python3", "-c", code], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_nat66_outbound_masquerade_and_internal_network(d, net6, outside):
    ns, host_ip, far_ip = outside
    net, subnet = net6
    assert f"ip6 saddr {subnet} oifname != " in ip6_table(d) and "masquerade" in ip6_table(d)
    c = ok(d, "run", "-d", "--network", net, "busybox", "sleep", "300")
    server = _serve_once(ns, 7001)
    try:
        assert "outside" in ok(d, "exec", c, "nc", "-w", "5", far_ip, "7001")
        assert server.wait(timeout=30) == 0
        assert server.stdout.read().strip() == host_ip  # NAT66: the host's address, not the container's
    finally:
        server.kill()

    internal = f"v6i-{uuid.uuid4().hex[:8]}"
    sub_i = create_net6(d, internal, "--internal")
    try:
        assert f"ip6 saddr {sub_i}" not in ip6_table(d)  # no masquerade for an internal network
        i = ok(d, "run", "-d", "--network", internal, "busybox", "sleep", "300")
        assert "default" not in ok(d, "exec", i, "ip", "-6", "route")
        server = _serve_once(ns, 7002)
        try:
            r = d.docker("exec", i, "nc", "-w", "3", far_ip, "7002")
            assert r.returncode != 0 and b"outside" not in r.stdout
        finally:
            server.kill()
        # isolation between networks, IPv6 too: c (on net) cannot reach i (internal), nor i c
        i6 = inspect(d, i)["NetworkSettings"]["Networks"][internal]["GlobalIPv6Address"]
        c6 = inspect(d, c)["NetworkSettings"]["Networks"][net]["GlobalIPv6Address"]
        assert d.docker("exec", c, "ping", "-6", "-c1", "-W2", i6).returncode != 0
        assert d.docker("exec", i, "ping", "-6", "-c1", "-W2", c6).returncode != 0
    finally:
        for cid in d.docker("ps", "-aq", "--filter", f"network={internal}").stdout.decode().split():
            d.docker("rm", "-f", cid)
        d.docker("network", "rm", internal)


def test_isolation_between_two_ipv6_networks_and_cleanup(d, net6):
    net, subnet = net6
    other = f"v6b-{uuid.uuid4().hex[:8]}"
    create_net6(d, other)
    try:
        a = ok(d, "run", "-d", "--network", net, "busybox", "sleep", "300")
        b = ok(d, "run", "-d", "--network", other, "busybox", "sleep", "300")
        b6 = inspect(d, b)["NetworkSettings"]["Networks"][other]["GlobalIPv6Address"]
        a6 = inspect(d, a)["NetworkSettings"]["Networks"][net]["GlobalIPv6Address"]
        assert d.docker("exec", a, "ping", "-6", "-c1", "-W2", b6).returncode != 0
        assert d.docker("exec", b, "ping", "-6", "-c1", "-W2", a6).returncode != 0
        # a container on both networks reaches both
        ok(d, "network", "connect", other, a)
        assert ok(d, "exec", a, "ping", "-6", "-c1", "-W5", b6)
        bridge = json.loads(ok(d, "network", "inspect", other))[0]["Options"].get("com.docker.network.bridge.name") \
            or "dy-" + json.loads(ok(d, "network", "inspect", other))[0]["Id"][:12]
        assert bridge in ip6_table(d)
    finally:
        for cid in d.docker("ps", "-aq", "--filter", f"network={other}").stdout.decode().split():
            d.docker("rm", "-f", cid)
        ok(d, "network", "rm", other)
    # the network's IPv6 rules and its bridge (with its IPv6 gateway) are gone with it
    assert bridge not in ip6_table(d)
    assert subprocess.run(["ip", "link", "show", bridge], capture_output=True).returncode != 0


def test_default_bridge_with_daemon_ipv6_and_fixed_cidr_v6(make_daemon, busybox_tar, tmp_path):
    """dockerd's ``ipv6`` and ``fixed-cidr-v6``: the default bridge has IPv6, and its containers
    get Docker's top-level ``GlobalIPv6Address``/``IPv6Gateway`` too."""
    fixed = random_subnet6()
    conf = tmp_path / "d.toml"
    pool = free_subnet4(22)
    conf.write_text(f'ipv6 = true\nfixed-cidr-v6 = "{fixed}"\n'
                    f'default-address-pools = [{{base = "{pool}", size = 24}}]\n')
    d = make_daemon("--config-file", str(conf))
    d.load(busybox_tar)
    bridge = json.loads(ok(d, "network", "inspect", "bridge"))[0]
    assert bridge["EnableIPv6"] is True
    assert {"Subnet": str(fixed), "Gateway": str(fixed.network_address + 1)} in bridge["IPAM"]["Config"]
    c = ok(d, "run", "-d", "busybox", "sleep", "300")
    try:
        ns = inspect(d, c)["NetworkSettings"]
        addr = ipaddress.ip_address(ns["GlobalIPv6Address"])
        assert addr in fixed and ns["GlobalIPv6PrefixLen"] == 64 and ns["IPv6Gateway"] == str(fixed.network_address + 1)
        assert ns["Networks"]["bridge"]["GlobalIPv6Address"] == str(addr)
        assert ok(d, "exec", c, "ping", "-6", "-c1", "-W5", str(fixed.network_address + 1))
    finally:
        d.docker("rm", "-f", c)
    # without a fixed-cidr-v6: a /64 of the daemon's own unique-local /48 (Docker 27's default pool)
    net = f"v6auto-{uuid.uuid4().hex[:6]}"
    ok(d, "network", "create", "--ipv6", net)
    auto = json.loads(ok(d, "network", "inspect", net))[0]["IPAM"]["Config"]
    sub6 = ipaddress.ip_network(next(x["Subnet"] for x in auto if ":" in x["Subnet"]))
    assert sub6.prefixlen == 64 and sub6.subnet_of(ipaddress.ip_network("fd00::/8"))
    ok(d, "network", "rm", net)
    # killed, then started without ipv6: the default bridge loses its IPv6 (record and link)
    import signal

    bridge_dev = f"dy{instance_of(d.data_root)}-br0"
    assert str(fixed.network_address + 1) in subprocess.run(
        ["ip", "-6", "addr", "show", "dev", bridge_dev], capture_output=True, text=True).stdout
    d.stop(signal.SIGKILL)
    conf.write_text(f'default-address-pools = [{{base = "{pool}", size = 24}}]\n')
    d.start()
    assert json.loads(ok(d, "network", "inspect", "bridge"))[0]["EnableIPv6"] is False
    shown = subprocess.run(["ip", "-6", "addr", "show", "dev", bridge_dev, "scope", "global"],
                           capture_output=True, text=True).stdout
    assert str(fixed.network_address + 1) not in shown, shown


def test_ipv6_survives_a_daemon_kill_with_live_restore(make_daemon, busybox_tar, tmp_path):
    """kill -9 and restart: the running containers keep their IPv6 addresses, the bridge its
    IPv6 gateway, the ip6 rules and the published [::1] port come back, names still resolve."""
    import signal

    conf = tmp_path / "d.toml"
    conf.write_text(f'default-address-pools = [{{base = "{free_subnet4(22)}", size = 24}}]\n')
    d = make_daemon("--config-file", str(conf))
    d.load(busybox_tar)
    net = f"v6r-{uuid.uuid4().hex[:6]}"
    subnet = create_net6(d, net)
    a = ok(d, "run", "-d", "--name", f"{net}-a", "--network", net, "-p", "[::1]::80", "busybox", "sh", "-c", HTTPD)
    b = ok(d, "run", "-d", "--name", f"{net}-b", "--network", net, "busybox", "sleep", "300")
    addr_a = inspect(d, a)["NetworkSettings"]["Networks"][net]["GlobalIPv6Address"]
    port = int(inspect(d, a)["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"])
    assert wait_for(lambda: http_get(socket.AF_INET6, "::1", port) == f"hello-{a[:12]}", timeout=15)
    d.stop(signal.SIGKILL)
    d.start()
    assert inspect(d, a)["NetworkSettings"]["Networks"][net]["GlobalIPv6Address"] == addr_a
    assert f"({addr_a})" in ok(d, "exec", b, "ping", "-6", "-c1", "-W5", f"{net}-a")
    assert ok(d, "exec", b, "ping", "-6", "-c1", "-W5", str(subnet.network_address + 1))
    assert f"ip6 saddr {subnet}" in ip6_table(d)
    assert wait_for(lambda: http_get(socket.AF_INET6, "::1", port) == f"hello-{a[:12]}", timeout=15)
    # a new container after the restart gets another address
    c = ok(d, "run", "-d", "--network", net, "busybox", "sleep", "300")
    addrs = {addr_a, inspect(d, b)["NetworkSettings"]["Networks"][net]["GlobalIPv6Address"],
             inspect(d, c)["NetworkSettings"]["Networks"][net]["GlobalIPv6Address"]}
    assert len(addrs) == 3
    for cid in (a, b, c):
        d.docker("rm", "-f", cid)
    ok(d, "network", "rm", net)


def test_dockyard_cli_creates_an_ipv6_network(d):
    name = f"v6cli-{uuid.uuid4().hex[:6]}"
    sub4, sub6 = free_subnet4(), random_subnet6()
    gw6 = str(sub6.network_address + 0xFFFF)
    r = d.cli("network", "create", "--ipv6", "--subnet", str(sub4), "--subnet", str(sub6), "--gateway", gw6, name)
    assert r.returncode == 0, r.stderr
    try:
        n = json.loads(ok(d, "network", "inspect", name))[0]
        assert n["EnableIPv6"] is True
        assert {"Subnet": str(sub6), "Gateway": gw6} in n["IPAM"]["Config"]
        assert any(c["Subnet"] == str(sub4) for c in n["IPAM"]["Config"])
    finally:
        d.docker("network", "rm", name)


def test_connect_to_an_ipv6_network_brings_the_ipv6_default_route(d, net6):
    """A container whose first network is IPv4 only gets its IPv6 default route from the IPv6
    network it joins later (Docker picks the IPv6 gateway endpoint on its own)."""
    net, subnet = net6
    plain = f"v4-{uuid.uuid4().hex[:8]}"
    ok(d, "network", "create", "--subnet", str(free_subnet4()), plain)
    try:
        c = ok(d, "run", "-d", "--network", plain, "busybox", "sleep", "300")
        assert "default" not in ok(d, "exec", c, "ip", "-6", "route")
        fixed = str(subnet.network_address + 0x42)
        ok(d, "network", "connect", "--ip6", fixed, net, c)
        s = inspect(d, c)["NetworkSettings"]["Networks"][net]
        assert s["GlobalIPv6Address"] == fixed and s["IPv6Gateway"] == str(subnet.network_address + 1)
        assert f"default via {subnet.network_address + 1}" in ok(d, "exec", c, "ip", "-6", "route")
        ok(d, "network", "disconnect", net, c)
        assert "inet6 fd" not in ok(d, "exec", c, "ip", "-6", "addr")
    finally:
        for cid in d.docker("ps", "-aq", "--filter", f"network={plain}").stdout.decode().split():
            d.docker("rm", "-f", cid)
        d.docker("network", "rm", plain)
