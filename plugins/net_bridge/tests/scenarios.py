"""Driver scenarios, each run by test_bridge.py in a private network and mount namespace
(``unshare --net --mount``): the bridges, veths, namespaces and nftables/iptables rules they
make exist only there and vanish with the process. Run as ``python scenarios.py NAME TMPDIR``."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from dockyard.drivers.network import Endpoint, Network
from dockyard.networks import netns
from dockyard_net_bridge.bridge import BridgeDriver


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(args, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(args)}: {r.stdout}{r.stderr}")
    return r


def links() -> set[str]:
    return {line.split(":")[1].strip().split("@")[0] for line in sh("ip", "-o", "link").stdout.splitlines()}


def ping(ns: Path, ip: str) -> bool:
    """One echo request, one second for the answer: for what must NOT get through."""
    return sh("nsenter", f"--net={ns}", "busybox", "ping", "-c", "1", "-W", "1", ip, check=False).returncode == 0


def reaches(ns: Path, ip: str, timeout: float = 30.0) -> bool:
    """For what must get through: pinged until it answers, within ``timeout``. A link just
    made may lose the first ARP request on a loaded machine; the kernel retries only after
    a second, when one ping has already given up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ping(ns, ip):
            return True
    return False


class World:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.driver = BridgeDriver(config={"instance": "t"}, root=tmp / "root", state=tmp / "state")
        (tmp / "root").mkdir(exist_ok=True)

    def net(self, n: int, internal: bool = False) -> Network:
        return Network(id=f"{n:x}" * 64, name=f"n{n}", driver="bridge", subnet=f"10.50.{n}.0/24",
                       gateway=f"10.50.{n}.1", internal=internal, created_ns=n)

    def endpoint(self, net: Network, host: int) -> Endpoint:
        path = self.tmp / "netns" / f"c{net.name}-{host}"
        netns.create(path)
        ip = net.subnet.replace(".0/24", f".{host}")
        return Endpoint(id=f"{host:02x}{net.id}"[:64], network_id=net.id, container_id=f"c{host}", netns=str(path),
                        ifname="eth0", address=f"{ip}/24", gateway=net.gateway, mac=f"02:42:0a:32:00:{host:02x}")


def table() -> str:
    return sh("nft", "list", "table", "ip", "dockyard_t", check=False).stdout


def scenario_wiring_isolation_and_teardown(w: World) -> None:
    d = w.driver
    n1, n2 = w.net(1), w.net(2, internal=True)
    d.create(n1)
    d.create(n2)
    a, b, c = w.endpoint(n1, 2), w.endpoint(n1, 3), w.endpoint(n2, 2)
    for net, ep in ((n1, a), (n1, b), (n2, c)):
        d.join(net, ep)
    out = sh("nsenter", f"--net={a.netns}", "ip", "-o", "addr", "show", "eth0").stdout
    assert "10.50.1.2/24" in out, out
    route = sh("nsenter", f"--net={a.netns}", "ip", "route").stdout
    assert "default via 10.50.1.1" in route, route
    link = sh("nsenter", f"--net={a.netns}", "ip", "-o", "link", "show", "eth0").stdout
    assert "link/ether 02:42:0a:32:00:02" in link and "mtu 1500" in link, link
    assert reaches(Path(a.netns), "10.50.1.3"), "same network"
    assert not ping(Path(c.netns), "10.50.1.2"), "isolation between networks"
    assert not ping(Path(a.netns), "10.50.2.2"), "isolation, the other way"
    rules = table()
    assert "ip saddr 10.50.1.0/24" in rules and "masquerade" in rules
    assert "10.50.2.0/24" not in rules, "an internal network is not masqueraded"
    d.leave(n1, b)
    assert "dyv" + b.id[:12] not in links()
    d.leave(n1, b)  # missing is fine
    d.leave(n2, c)
    d.delete(n2)
    assert "dy-" + n2.id[:12] not in links() and "dy-2222" not in table()
    d.leave(n1, a)
    d.close([n1], in_use=False)
    assert table() == "" and not [x for x in links() if x.startswith("dy")]


def scenario_reconcile_restores_rules_and_removes_stale(w: World) -> None:
    d = w.driver
    n1, n2 = w.net(1), w.net(2)
    d.create(n1)
    d.create(n2)
    a, b = w.endpoint(n1, 2), w.endpoint(n1, 3)
    d.join(n1, a)
    d.join(n1, b)
    before = table()
    sh("nft", "delete", "table", "ip", "dockyard_t")
    sh("ip", "link", "del", "dy-" + n2.id[:12])
    # a fresh driver (daemon restart): records say n1 and n2 exist, endpoint b is gone
    d2 = BridgeDriver(config={"instance": "t"}, root=w.tmp / "root", state=w.tmp / "state")
    d2.reconcile([n1, n2], [a])
    assert table() == before, "nothing missing, nothing stale"
    assert "dy-" + n2.id[:12] in links(), "missing bridge re-created"
    assert "dyv" + b.id[:12] not in links(), "stale veth removed"
    assert "dyv" + a.id[:12] in links()
    sh("ip", "link", "del", "dyv" + a.id[:12])  # a running container lost its link
    d2.reconcile([n1, n2], [a])
    assert "dyv" + a.id[:12] in links(), "missing veth of a recorded endpoint re-created"
    assert "10.50.1.2/24" in sh("nsenter", f"--net={a.netns}", "ip", "-o", "addr", "show", "eth0").stdout
    d2.reconcile([n1], [a])  # n2 no longer recorded: its bridge and rules go
    assert "dy-" + n2.id[:12] not in links() and "10.50.2.0" not in table()
    d2.close([n1], in_use=True)  # live-restore: everything stays
    assert table() and "dy-" + n1.id[:12] in links()
    d2.leave(n1, a)
    d2.close([n1], in_use=False)
    assert table() == "" and not [x for x in links() if x.startswith("dy")]


def scenario_forward_policy_drop(w: World) -> None:
    """A host like one running Docker: iptables FORWARD policy DROP. Our accepts go into that
    chain (and only there), so routed traffic flows; isolation still holds."""
    d = w.driver
    # an "outside" reached by routing: a namespace behind a veth with its own subnet
    out = w.tmp / "netns" / "outside"
    netns.create(out)
    sh("ip", "link", "add", "dyvout", "type", "veth", "peer", "name", "eth0", "netns", str(out))
    sh("ip", "addr", "add", "10.60.0.1/24", "dev", "dyvout")
    sh("ip", "link", "set", "dyvout", "up")
    sh("nsenter", f"--net={out}", "ip", "addr", "add", "10.60.0.2/24", "dev", "eth0")
    sh("nsenter", f"--net={out}", "ip", "link", "set", "eth0", "up")
    sh("iptables", "-P", "FORWARD", "DROP")
    n1, n2 = w.net(1), w.net(2)
    d.create(n1)
    d.create(n2)
    a, c = w.endpoint(n1, 2), w.endpoint(n2, 2)
    d.join(n1, a)
    d.join(n2, c)
    rules = sh("iptables", "-S", "FORWARD").stdout
    assert rules.count("dockyard:dockyard_t") == 4, rules
    assert reaches(Path(a.netns), "10.60.0.2"), "routed and masqueraded despite FORWARD DROP"
    d.accepts.sync([])
    assert not ping(Path(a.netns), "10.60.0.2"), "without the accepts the DROP policy wins"
    d.reconcile([n1, n2], [a, c])
    assert reaches(Path(a.netns), "10.60.0.2")
    assert not ping(Path(c.netns), "10.50.1.2"), "isolation still holds"
    d.leave(n2, c)
    d.delete(n2)
    assert sh("iptables", "-S", "FORWARD").stdout.count("dockyard:dockyard_t") == 2
    d.leave(n1, a)
    d.close([n1], in_use=False)
    assert "dockyard" not in sh("iptables", "-S", "FORWARD").stdout


def scenario_bad_options_leave_nothing(w: World) -> None:
    d = w.driver
    from dockyard.errors import InvalidArgument

    bad = [w.net(1), w.net(2), w.net(3)]
    bad[0].options = {"com.docker.network.driver.mtu": "12"}
    bad[1].options = {"com.docker.network.bridge.name": "a-name-far-too-long"}
    bad[2].options = {"com.docker.network.bridge.no_such_option": "1"}
    for net in bad:
        try:
            d.create(net)
        except InvalidArgument:
            pass
        else:
            raise AssertionError(f"{net.options} accepted")
    assert not [x for x in links() if x.startswith("dy")] and table() == ""


if __name__ == "__main__":
    name, tmp = sys.argv[1], Path(sys.argv[2])
    globals()[f"scenario_{name}"](World(tmp))
    print("ok")
