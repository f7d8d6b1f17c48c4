"""Networks with real clients: the docker CLI and docker-py against dockyardd, real bridges,
veths, namespaces and nftables. Traffic only goes to addresses of networks the tests made."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from dockyard.networks.service import instance_of
from dockyard.testing.daemon import wait_for

pytestmark = pytest.mark.privileged


def run(d, *args, check=True):
    r = d.docker(*args)
    if check and r.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed: {r.stderr.decode()}")
    return r.stdout.decode().strip()


def links() -> set[str]:
    return set(os.listdir("/sys/class/net"))


def nft_table(d) -> str:
    name = "dockyard_" + instance_of(d.data_root)
    r = subprocess.run(["nft", "list", "table", "ip", name], capture_output=True, text=True)
    return r.stdout if r.returncode == 0 else ""


def gone_soon(link: str) -> bool:
    """The kernel deletes a namespace (and its veth pair) asynchronously."""
    return wait_for(lambda: link not in links())


def pings(d, container: str, address: str) -> bool:
    """``container`` reaches ``address``. Retried: one lost first packet (ARP on a link just
    made, on a loaded machine) is not a failure; a real one still fails after the timeout."""
    return wait_for(lambda: d.docker("exec", container, "ping", "-c", "1", "-W", "2", address).returncode == 0)


def bridge_ports(bridge: str) -> set[str]:
    out = subprocess.run(["ip", "-o", "link", "show", "master", bridge], capture_output=True, text=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}


def known_bridges(d) -> str:
    path = d.data_root / "network" / "bridge" / "bridges.json"
    return path.read_text() if path.exists() else ""


def netns_mounts(d) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if str(d.exec_root / "netns") in line]


@pytest.fixture
def net(d):
    """A factory of user networks, removed after the test."""
    made = []

    def make(*args):
        name = f"t{uuid.uuid4().hex[:10]}"
        run(d, "network", "create", *args, name)
        made.append(name)
        return name

    yield make
    for name in made:
        for cid in run(d, "ps", "-aq", "--no-trunc", "--filter", f"network={name}", check=False).split():
            run(d, "rm", "-f", cid, check=False)
        run(d, "network", "rm", name, check=False)


def ip_of(d, container, network):
    return run(d, "inspect", "-f", f"{{{{.NetworkSettings.Networks.{network}.IPAddress}}}}", container)


def sleeper(d, network, *extra):
    return run(d, "run", "-d", "--network", network, *extra, "busybox", "sleep", "300")


def test_containers_on_a_user_network_reach_each_other(d, net):
    n = net()
    a, b = sleeper(d, n), sleeper(d, n)
    ip_a = ip_of(d, a, n)
    assert ip_a and ip_a != ip_of(d, b, n)
    assert pings(d, b, ip_a)
    # and TCP: busybox nc listening in one, connecting from the other (until it listens)
    run(d, "exec", "-d", a, "sh", "-c", "echo hello | nc -l -p 7000")
    wait_for(lambda: d.docker("exec", b, "nc", ip_a, "7000").stdout.strip() == b"hello")
    # docker stats' NET I/O: eth0's counters from inside the container's namespace, no lo
    stats = json.loads(run(d, "stats", "--no-stream", "--format", "{{json .}}", b))
    assert stats["NetIO"].split(" / ")[0] not in ("0B", "--")
    client = d.docker_client()
    r = client.api.stats(b, stream=False)
    client.close()
    assert set(r["networks"]) == {"eth0"} and r["networks"]["eth0"]["tx_packets"] > 0


def test_containers_on_different_networks_cannot_reach_each_other(d, net):
    n1, n2 = net(), net()
    a, b = sleeper(d, n1), sleeper(d, n2)
    r = d.docker("exec", b, "ping", "-c", "1", "-W", "1", ip_of(d, a, n1))
    assert r.returncode != 0
    # the gateway of its own network answers: the failure above is isolation, not a broken link
    gw = run(d, "network", "inspect", "-f", "{{(index .IPAM.Config 0).Gateway}}", n2)
    assert pings(d, b, gw)


def test_network_none_has_only_lo(d):
    out = run(d, "run", "--rm", "--network", "none", "busybox", "ip", "-o", "link")
    names = [line.split(":")[1].strip() for line in out.splitlines()]
    assert names == ["lo"]
    assert "UP" in out.splitlines()[0]


def test_host_and_none_networks_list_their_running_containers(d):
    on_host = run(d, "run", "-d", "--network", "host", "busybox", "sleep", "60")
    on_none = run(d, "run", "-d", "--network", "none", "busybox", "sleep", "60")
    for network, cid, other in (("host", on_host, on_none), ("none", on_none, on_host)):
        listed = json.loads(run(d, "network", "inspect", network))[0]["Containers"]
        assert cid in listed and other not in listed
        assert listed[cid]["Name"] == json.loads(run(d, "inspect", cid))[0]["Name"].lstrip("/")
    run(d, "stop", "-t", "0", on_host)
    assert on_host not in json.loads(run(d, "network", "inspect", "host"))[0]["Containers"]


def test_network_host_sees_the_hosts_links(d):
    out = run(d, "run", "--rm", "--network", "host", "busybox", "ip", "-o", "link")
    names = {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}
    default_dev = subprocess.run(["ip", "route", "show", "default"], capture_output=True, text=True).stdout.split()
    assert "lo" in names
    if "dev" in default_dev:
        assert default_dev[default_dev.index("dev") + 1] in names
    assert len(names & links()) >= 2  # the host's own links, not a namespace with lo only
    # as Docker: the host's name, and copies of its /etc/hosts (plus --add-host) and resolv.conf
    out = run(d, "run", "--rm", "--network", "host", "--add-host", "extra.test:10.1.2.3", "busybox",
              "sh", "-c", "hostname; cat /etc/hostname; cat /etc/hosts; echo ==; cat /etc/resolv.conf")
    name, file_name, rest = out.split("\n", 2)
    hosts_text, resolv_text = rest.split("==\n")
    assert name == file_name == socket.gethostname()
    assert hosts_text.startswith(Path("/etc/hosts").read_text().rstrip("\n"))
    assert "10.1.2.3\textra.test" in hosts_text
    assert resolv_text.split() == Path("/etc/resolv.conf").read_text().split()


def test_default_bridge_settings_for_docker_py(client, d):
    c = client.containers.run("busybox", "sleep 300", detach=True)
    try:
        c.reload()
        ns = c.attrs["NetworkSettings"]
        bridge = client.networks.get("bridge")
        cfg = bridge.attrs["IPAM"]["Config"][0]
        import ipaddress

        assert ipaddress.ip_address(ns["IPAddress"]) in ipaddress.ip_network(cfg["Subnet"])
        assert ns["Gateway"] == cfg["Gateway"]
        assert ns["MacAddress"].startswith("02:42:")
        ep = ns["Networks"]["bridge"]
        assert (ep["IPAddress"], ep["NetworkID"], ep["EndpointID"]) == (ns["IPAddress"], bridge.id, ns["EndpointID"])
        assert ns["SandboxKey"] and Path(ns["SandboxKey"]).exists()
        assert bridge.attrs["Options"]["com.docker.network.bridge.name"] != "docker0"
        listed = [x for x in client.api.containers() if x["Id"] == c.id][0]
        assert listed["NetworkSettings"]["Networks"]["bridge"]["IPAddress"] == ns["IPAddress"]
        bridge.reload()
        assert c.id in bridge.attrs["Containers"]
        hosts = c.exec_run("cat /etc/hosts").output.decode()
        assert f"{ns['IPAddress']}\t{c.attrs['Config']['Hostname']}" in hosts
        # the container reaches its gateway, the bridge on the host
        assert wait_for(lambda: c.exec_run(f"ping -c 1 -W 2 {ns['Gateway']}").exit_code == 0)
    finally:
        c.remove(force=True)


def test_stop_releases_veth_namespace_and_address(d, net):
    n = net("--subnet", "10.231.7.0/29")  # 5 usable addresses besides the gateway
    c = sleeper(d, n)
    sandbox = run(d, "inspect", "-f", "{{.NetworkSettings.SandboxKey}}", c)
    veth = "dyv" + run(d, "inspect", "-f", f"{{{{.NetworkSettings.Networks.{n}.EndpointID}}}}", c)[:12]
    assert sandbox in netns_mounts(d) and veth in links()
    run(d, "stop", "-t", "0", c)
    assert sandbox not in netns_mounts(d)
    assert gone_soon(veth)  # the kernel deletes the pair with the namespace, in the background
    assert ip_of(d, c, n) == ""
    assert json.loads(run(d, "network", "inspect", n))[0]["Containers"] == {}
    # never handed out twice: 5 more containers fit (the stopped one holds nothing), a 6th does not
    for _ in range(5):
        sleeper(d, n)
    r = d.docker("run", "-d", "--network", n, "busybox", "sleep", "300")
    assert r.returncode != 0 and b"no available IPv4 addresses" in r.stderr
    ips = [ip_of(d, cid, n) for cid in run(d, "ps", "-q", "--no-trunc", "--filter", f"network={n}").split()]
    assert len(ips) == len(set(ips)) == 5


def test_connect_disconnect_hotplug_with_fixed_ip_and_events(client, d, net):
    n = net("--subnet", "10.231.8.0/24")
    since = int(time.time()) - 1
    c = client.containers.run("busybox", "sleep 300", detach=True)
    try:
        network = client.networks.get(n)
        network.connect(c, ipv4_address="10.231.8.77", aliases=["db"])
        c.reload()
        ep = c.attrs["NetworkSettings"]["Networks"][n]
        assert ep["IPAddress"] == "10.231.8.77" and "db" in ep["Aliases"]
        assert "10.231.8.77/24" in c.exec_run("ip addr show eth1").output.decode()
        # connecting twice is a conflict; nothing changes
        import docker

        with pytest.raises(docker.errors.APIError) as err:
            network.connect(c)
        assert err.value.status_code == 409
        network.disconnect(c)
        assert c.exec_run("ip link show eth1").exit_code != 0
        c.reload()
        assert n not in c.attrs["NetworkSettings"]["Networks"]
    finally:
        c.remove(force=True)
    events = client.events(since=since, until=int(time.time()) + 1, decode=True, filters={"type": "network"})
    actions = [(e["Action"], e["Actor"]["Attributes"].get("name")) for e in events]
    assert ("connect", n) in actions and ("disconnect", n) in actions
    run(d, "network", "rm", n)
    events = client.events(since=since, until=int(time.time()) + 1, decode=True, filters={"type": "network"})
    actions = [(e["Action"], e["Actor"]["Attributes"].get("name")) for e in events]
    assert ("create", n) in actions and ("destroy", n) in actions


def test_bad_input_is_refused_and_leaves_nothing(client, d, net):
    import docker

    n = net("--subnet", "10.231.9.0/24", "--ip-range", "10.231.9.128/25")
    c = sleeper(d, n, "--ip", "10.231.9.5")
    dev = json.loads(run(d, "network", "inspect", n))[0]["Options"].get("com.docker.network.bridge.name") or \
        "dy-" + json.loads(run(d, "network", "inspect", n))[0]["Id"][:12]

    def state():
        return (bridge_ports(dev), known_bridges(d), nft_table(d), netns_mounts(d),
                json.loads(run(d, "network", "inspect", n))[0]["Containers"])

    before = state()
    assert len(before[0]) == 1 and before[1] and before[2]

    def refused(status, fn, *a, **kw):
        with pytest.raises(docker.errors.APIError) as err:
            fn(*a, **kw)
        assert err.value.status_code == status, err.value.explanation
        return err.value.explanation

    ipam = lambda **kw: docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(**kw)])  # noqa: E731
    assert "overlaps" in refused(409, client.networks.create, "tbad1", ipam=ipam(subnet="10.231.9.0/25"))
    assert "gateway" in refused(400, client.networks.create, "tbad2", ipam=ipam(subnet="10.231.10.0/24",
                                                                               gateway="10.231.11.1")).lower()
    refused(400, client.networks.create, "tbad3", ipam=ipam(subnet="10.231.12.0/24", iprange="10.231.13.0/25"))
    refused(400, client.networks.create, "tbad4", ipam=ipam(subnet="not-a-subnet"))
    assert "already exists" in refused(409, client.networks.create, n)
    assert "EnableIPv6" in refused(400, client.networks.create, "tbad5", ipam=ipam(subnet="fd00:231::/64"))
    refused(403, client.networks.get("bridge").remove)
    assert "active endpoints" in refused(409, client.networks.get(n).remove)
    # container create: an address outside the subnet, on the default bridge, a missing network
    r = d.docker("create", "--network", n, "--ip", "10.231.99.5", "busybox")
    assert r.returncode != 0 and b"does not belong" in r.stderr
    r = d.docker("create", "--ip", "172.18.0.50", "busybox")
    assert r.returncode != 0 and b"user defined networks only" in r.stderr
    r = d.docker("run", "--rm", "--network", "no-such-net", "busybox", "true")  # Docker checks at start
    assert r.returncode != 0 and b"network no-such-net not found" in r.stderr
    # an address already taken: create succeeds, start fails cleanly
    r = d.docker("run", "-d", "--network", n, "--ip", "10.231.9.5", "busybox", "sleep", "300")
    assert r.returncode != 0 and b"Address already in use" in r.stderr
    refused(409, client.networks.get(n).connect, c)
    assert "not found" in refused(404, client.networks.get, "no-such-net")
    assert state() == before
    assert not [x for x in client.networks.list() if x.name.startswith("tbad")]


def test_internal_network_has_no_masquerade(d, net):
    n = net("--internal", "--subnet", "10.231.14.0/24")
    table = nft_table(d)
    assert "10.231.14.0/24" not in table
    inspect = json.loads(run(d, "network", "inspect", n))[0]
    assert inspect["Internal"] is True
    n2 = net("--subnet", "10.231.15.0/24")
    assert "ip saddr 10.231.15.0/24" in nft_table(d) and "masquerade" in nft_table(d)
    assert n2


def test_network_filters_and_prune(client, d, net):
    n = net("--label", "team=net")
    names = {x.name for x in client.networks.list(filters={"label": "team=net"})}
    assert names == {n}
    builtin = {x.name for x in client.networks.list(filters={"type": "builtin"})}
    assert builtin == {"bridge", "host", "none"}
    assert n in {x.name for x in client.networks.list(filters={"dangling": "true"})}
    assert client.networks.list(names=[n])[0].attrs["Driver"] == "bridge"
    result = client.networks.prune(filters={"label": "team=net"})
    assert result["NetworksDeleted"] == [n]
    assert not client.networks.list(names=[n])


def test_container_network_mode_shares_the_namespace(d, net):
    n = net()
    a = sleeper(d, n)
    out = run(d, "run", "--rm", "--network", f"container:{a}", "busybox", "ip", "-o", "addr", "show", "eth0")
    assert ip_of(d, a, n) in out
    # as Docker: the other's hostname, hosts and resolv.conf, so its resolver answers names here too
    peer = run(d, "run", "-d", "--network", n, "--name", f"{n}-peer", "busybox", "sleep", "60").strip()
    out = run(d, "run", "--rm", "--network", f"container:{a}", "busybox", "sh", "-c",
              f"hostname; cat /etc/resolv.conf; nslookup {n}-peer")
    assert out.splitlines()[0] == run(d, "exec", a, "hostname").strip()
    assert "nameserver 127.0.0.11" in out and ip_of(d, peer, n) in out.split("Name:", 1)[1]
    r = d.docker("run", "--rm", "--network", f"container:{a}", "-h", "other", "busybox", "true")
    assert r.returncode != 0 and "conflicting options: hostname and the network mode" in r.stderr.decode()


def test_daemon_restart_keeps_networks_and_reconciles(make_daemon, busybox_tar):
    daemon = make_daemon()
    daemon.load(busybox_tar)
    try:
        name = "trestart"
        run(daemon, "network", "create", "--subnet", "10.231.16.0/24", name)
        bridge = json.loads(run(daemon, "network", "inspect", name))[0]
        a = run(daemon, "run", "-d", "--network", name, "busybox", "sleep", "300")
        b = run(daemon, "run", "-d", "--network", name, "busybox", "sleep", "300")
        table = nft_table(daemon)
        assert "10.231.16.0/24" in table
        daemon.kill()
        # damage: the firewall table gone, a stale veth on the bridge
        subprocess.run(["nft", "delete", "table", "ip", "dockyard_" + instance_of(daemon.data_root)], check=True)
        dev = "dy-" + bridge["Id"][:12]
        subprocess.run(["ip", "link", "add", "dyvteststale0", "type", "veth", "peer", "name", "dyvteststale1"],
                       check=True)
        subprocess.run(["ip", "link", "set", "dyvteststale0", "master", dev], check=True)
        daemon.start()
        assert nft_table(daemon) == table  # nothing missing, nothing stale
        assert "dyvteststale0" not in links() and "dyvteststale1" not in links()
        assert run(daemon, "network", "ls", "-q", "--filter", f"name={name}")
        assert pings(daemon, b, ip_of(daemon, a, name))
        run(daemon, "rm", "-f", a, b)
        run(daemon, "network", "rm", name)
        assert dev not in links()
    finally:
        for link in ("dyvteststale0",):
            subprocess.run(["ip", "link", "del", link], capture_output=True)
        daemon.stop()
    # a daemon that stops with nothing running leaves no bridge and no table behind
    assert nft_table(daemon) == ""
    assert not [x for x in links() if x.startswith(f"dy{instance_of(daemon.data_root)}")]


def test_dockyard_cli_network_commands(d):
    name = f"t{uuid.uuid4().hex[:10]}"

    def cli(*args):
        r = d.cli(*args)
        assert r.returncode == 0, r.stderr.decode()
        return r.stdout.decode().strip()

    nid = cli("network", "create", "--subnet", "10.231.20.0/24", "--label", "k=v", name)
    try:
        assert cli("network", "ls", "-q", "--no-trunc", "--filter", "label=k=v") == nid
        assert cli("network", "inspect", "-f", "{{.Driver}}", name) == "bridge"
        cid = cli("run", "-d", "--network", name, "--ip", "10.231.20.9", "busybox", "sleep", "300")
        assert ip_of(d, cid, name) == "10.231.20.9"
        cli("network", "disconnect", name, cid)
        assert name not in json.loads(run(d, "inspect", "-f", "{{json .NetworkSettings.Networks}}", cid))
        cli("network", "connect", "--ip", "10.231.20.10", "--alias", "db", name, cid)
        assert ip_of(d, cid, name) == "10.231.20.10"
        r = d.cli("network", "rm", name)
        assert r.returncode != 0 and b"active endpoints" in r.stderr
        run(d, "rm", "-f", cid)
        assert name in cli("network", "prune", "-f", "--filter", "label=k=v")
        assert cli("network", "ls", "-q", "--filter", f"name={name}") == ""
    finally:
        d.docker("network", "rm", name)


# -- issue 15: AuxiliaryAddresses, LinkLocalIPs, --mac-address and --link at network connect --


def test_auxiliary_addresses_are_reserved_and_shown(client, d):
    """IPAM AuxiliaryAddresses (``--aux-address``) are reserved: never handed to a container,
    refused as a fixed ``--ip``, shown in inspect; one outside the subnet is a 400."""
    import docker

    name = f"t{uuid.uuid4().hex[:10]}"
    run(d, "network", "create", "--subnet", "10.233.2.0/29", "--aux-address", "a=10.233.2.2",
        "--aux-address", "b=10.233.2.3", name)
    try:
        cfg = json.loads(run(d, "network", "inspect", name))[0]["IPAM"]["Config"]
        assert cfg == [{"Subnet": "10.233.2.0/29", "Gateway": "10.233.2.1",
                        "AuxiliaryAddresses": {"a": "10.233.2.2", "b": "10.233.2.3"}}]
        ips = sorted(ip_of(d, sleeper(d, name), name) for _ in range(3))
        assert ips == ["10.233.2.4", "10.233.2.5", "10.233.2.6"]  # .2 and .3 skipped
        r = d.docker("run", "-d", "--network", name, "busybox", "sleep", "300")
        assert r.returncode != 0 and "no available IPv4 addresses" in r.stderr.decode()
        run(d, "rm", "-f", *run(d, "ps", "-aq", "--filter", f"network={name}").split())
        r = d.docker("run", "--rm", "--network", name, "--ip", "10.233.2.2", "busybox", "true")
        assert r.returncode != 0 and "Address already in use: 10.233.2.2" in r.stderr.decode()
    finally:
        run(d, "rm", "-f", *(run(d, "ps", "-aq", "--filter", f"network={name}").split() or ["none-left"]),
            check=False)
        run(d, "network", "rm", name)
    bad = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet="10.233.3.0/24",
                                                                       aux_addresses={"x": "10.233.4.9"})])
    with pytest.raises(docker.errors.APIError) as info:  # the docker CLI checks this one itself
        client.networks.create(name, ipam=bad)
    assert info.value.status_code == 400
    assert "invalid auxiliary address x: it does not belong to subnet 10.233.3.0/24" in str(info.value)
    # docker-py's test_create_network_with_ipam_config: IPAM Options as sent (null here)
    ipam = docker.types.IPAMConfig(driver="default", pool_configs=[docker.types.IPAMPool(
        subnet="10.233.5.0/24", iprange="10.233.5.128/25", gateway="10.233.5.254",
        aux_addresses={"a": "10.233.5.5", "b": "10.233.5.6"})])
    net = client.networks.create(name, ipam=ipam)
    try:
        data = client.api.inspect_network(net.id)["IPAM"]
        assert data["Options"] is None
        assert data["Config"] == [{"Subnet": "10.233.5.0/24", "IPRange": "10.233.5.128/25",
                                   "Gateway": "10.233.5.254",
                                   "AuxiliaryAddresses": {"a": "10.233.5.5", "b": "10.233.5.6"}}]
    finally:
        net.remove()


def test_link_local_ips_are_on_the_interface(client, d):
    """EndpointSettings.IPAMConfig.LinkLocalIPs (``--link-local-ip``): at create (the default
    bridge too, docker-py's test) and at ``network connect``, added to that interface."""
    name = f"t{uuid.uuid4().hex[:10]}"
    run(d, "network", "create", "--subnet", "10.233.6.0/24", name)
    try:
        cid = run(d, "run", "-d", "--network", "bridge", "--link-local-ip", "169.254.8.8", "busybox", "sleep", "300")
        settings = json.loads(run(d, "inspect", cid))[0]["NetworkSettings"]["Networks"]["bridge"]
        assert settings["IPAMConfig"]["LinkLocalIPs"] == ["169.254.8.8"]
        addrs = run(d, "exec", cid, "ip", "-4", "-o", "addr", "show", "eth0")
        assert "inet 169.254.8.8/16" in addrs and f"inet {settings['IPAddress']}/" in addrs
        run(d, "network", "connect", "--link-local-ip", "169.254.9.9", name, cid)
        assert "inet 169.254.9.9/16" in run(d, "exec", cid, "ip", "-4", "-o", "addr", "show", "eth1")
        run(d, "restart", "-t", "0", cid)  # kept across a restart
        assert "inet 169.254.8.8/16" in run(d, "exec", cid, "ip", "-4", "-o", "addr", "show", "eth0")
        assert "inet 169.254.9.9/16" in run(d, "exec", cid, "ip", "-4", "-o", "addr", "show", "eth1")
        import docker

        bad = client.api.create_networking_config({"bridge": client.api.create_endpoint_config(
            link_local_ips=["not-an-ip"])})
        with pytest.raises(docker.errors.APIError, match="invalid link-local IP address: not-an-ip") as info:
            client.api.create_container("busybox", "true", networking_config=bad)
        assert info.value.status_code == 400
        run(d, "rm", "-f", cid)
    finally:
        run(d, "network", "rm", name, check=False)


def test_network_connect_with_mac_address(client, d):
    """``network connect --mac-address`` (EndpointConfig.MacAddress): on a created container
    (docker-py's test) and a running one; the interface has it, and it stays across restarts."""
    import docker

    name = f"t{uuid.uuid4().hex[:10]}"
    run(d, "network", "create", "--subnet", "10.233.7.0/24", name)
    try:
        created = client.api.create_container("busybox", "sleep 300")["Id"]
        client.api.connect_container_to_network(created, name, mac_address="02:42:ac:11:00:02")
        data = client.api.inspect_container(created)["NetworkSettings"]["Networks"][name]
        assert data["MacAddress"] == "02:42:ac:11:00:02"
        client.api.start(created)
        assert "02:42:ac:11:00:02" in run(d, "exec", created, "cat", "/sys/class/net/eth1/address")
        cid = run(d, "run", "-d", "busybox", "sleep", "300")
        # (this docker CLI has no `network connect --mac-address`: docker-py sends the same body)
        client.api.connect_container_to_network(cid, name, mac_address="92:D0:C6:0A:29:33")
        assert run(d, "exec", cid, "cat", "/sys/class/net/eth1/address") == "92:d0:c6:0a:29:33"
        assert run(d, "inspect", "-f", f"{{{{.NetworkSettings.Networks.{name}.MacAddress}}}}", cid) == \
            "92:d0:c6:0a:29:33"
        run(d, "stop", "-t", "0", cid)
        assert run(d, "inspect", "-f", f"{{{{.NetworkSettings.Networks.{name}.MacAddress}}}}", cid) == \
            "92:d0:c6:0a:29:33"
        run(d, "start", cid)
        assert run(d, "exec", cid, "cat", "/sys/class/net/eth1/address") == "92:d0:c6:0a:29:33"
        assert run(d, "exec", cid, "cat", "/sys/class/net/eth0/address").startswith("02:42:")  # untouched
        r = d.docker("network", "disconnect", name, cid)
        assert r.returncode == 0
        with pytest.raises(docker.errors.APIError, match="multicast"):
            client.api.connect_container_to_network(cid, name, mac_address="01:00:5e:00:00:01")
        # at create, a second network's own MAC (API 1.44 sends one per endpoint)
        second = f"t{uuid.uuid4().hex[:10]}"
        run(d, "network", "create", "--subnet", "10.233.10.0/24", second)
        try:
            both = client.api.create_container(
                "busybox", "sleep 300", host_config=client.api.create_host_config(network_mode=name),
                networking_config=client.api.create_networking_config({
                    name: client.api.create_endpoint_config(),
                    second: client.api.create_endpoint_config(mac_address="02:aa:bb:cc:dd:ee")}))["Id"]
            client.api.start(both)
            assert run(d, "exec", both, "cat", "/sys/class/net/eth1/address") == "02:aa:bb:cc:dd:ee"
            run(d, "rm", "-f", cid, created, both)
        finally:
            run(d, "network", "rm", second, check=False)
    finally:
        run(d, "network", "rm", name, check=False)
