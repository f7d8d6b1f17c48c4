"""dockerd's daemon.json keys that mean something here (issue 17): ``bip``, ``dns``,
``dns-search``, ``dns-opts``, ``default-shm-size``, ``default-ulimits`` honoured on a daemon of
the test's own; ``userland-proxy``, ``icc``, ``ip-forward``, ``iptables`` = false refused at start
naming the key and why."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.privileged

CONFIG = """
bip = "10.213.77.1/24"
dns = ["192.0.2.53", "192.0.2.54"]
dns-search = ["svc.example.test"]
dns-opts = ["ndots:3", "timeout:2"]
default-shm-size = "96m"
live-restore = true
userland-proxy = true
icc = true
ip-forward = true
iptables = true

[default-ulimits.nofile]
Name = "nofile"
Soft = 1234
Hard = 2345
"""


@pytest.fixture
def keyed(tmp_path: Path, make_daemon, busybox_tar: Path):
    conf = tmp_path / "dockyardd.toml"
    conf.write_text(CONFIG)
    d = make_daemon("--config-file", str(conf))
    d.load(busybox_tar)
    return d


def _run(d, *args: str) -> str:
    r = d.docker("run", "--rm", *args, timeout=120)
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout.decode()


def test_bip_is_the_default_bridge(keyed) -> None:
    net = json.loads(keyed.docker("network", "inspect", "bridge").stdout)[0]
    assert net["IPAM"]["Config"][0]["Subnet"] == "10.213.77.0/24"
    assert net["IPAM"]["Config"][0]["Gateway"] == "10.213.77.1"
    out = _run(keyed, "busybox", "sh", "-c", "ip -4 -o addr show eth0; ip route")
    assert "inet 10.213.77." in out and "default via 10.213.77.1" in out


def test_dns_defaults_and_a_container_s_own(keyed) -> None:
    resolv = _run(keyed, "busybox", "cat", "/etc/resolv.conf").splitlines()
    assert resolv[:2] == ["nameserver 192.0.2.53", "nameserver 192.0.2.54"]
    assert "search svc.example.test" in resolv
    assert "options ndots:3 timeout:2" in resolv
    # per list, as moby: the container's --dns replaces the servers, the daemon's search stays
    own = _run(keyed, "--dns", "198.51.100.7", "busybox", "cat", "/etc/resolv.conf").splitlines()
    assert own[0] == "nameserver 198.51.100.7" and "192.0.2.53" not in "\n".join(own)
    assert "search svc.example.test" in own
    # inspect keeps what the request said (dockerd applies these at start)
    cid = keyed.docker("create", "busybox", "true").stdout.decode().strip()
    hc = json.loads(keyed.docker("inspect", cid).stdout)[0]["HostConfig"]
    assert not hc["Dns"]
    keyed.docker("rm", cid)


def test_default_shm_size_and_ulimits(keyed) -> None:
    out = _run(keyed, "busybox", "sh", "-c", "df -k /dev/shm | tail -1; ulimit -Sn; ulimit -Hn")
    df, soft, hard = out.strip().splitlines()
    assert df.split()[1] == str(96 * 1024)
    assert (soft, hard) == ("1234", "2345")
    # a container's own values win
    out = _run(keyed, "--shm-size", "8m", "--ulimit", "nofile=100:200", "busybox", "sh", "-c",
               "df -k /dev/shm | tail -1; ulimit -Sn")
    df, soft = out.strip().splitlines()
    assert df.split()[1] == str(8 * 1024) and soft == "100"
    cid = keyed.docker("create", "busybox", "true").stdout.decode().strip()
    assert json.loads(keyed.docker("inspect", cid).stdout)[0]["HostConfig"]["ShmSize"] == 96 << 20
    keyed.docker("rm", cid)


@pytest.mark.parametrize("key", ["userland-proxy", "icc", "ip-forward", "iptables"])
def test_unsupported_false_is_refused_at_start(tmp_path: Path, make_daemon, key: str) -> None:
    conf = tmp_path / "dockyardd.toml"
    conf.write_text(f"{key} = false\n")
    d = make_daemon("--config-file", str(conf), start=False)
    with pytest.raises(RuntimeError) as err:
        d.start(timeout=60)
    assert f"dockyardd: error: {key}: false is not supported: " in str(err.value)


def test_bip_change_moves_an_unused_default_bridge(tmp_path: Path, make_daemon) -> None:
    conf = tmp_path / "dockyardd.toml"
    conf.write_text('bip = "10.213.78.1/24"\n')
    d = make_daemon("--config-file", str(conf))
    first = json.loads(d.docker("network", "inspect", "bridge").stdout)[0]
    assert first["IPAM"]["Config"][0]["Subnet"] == "10.213.78.0/24"
    d.stop()
    conf.write_text('bip = "10.213.79.129/25"\n')
    d.start()
    net = json.loads(d.docker("network", "inspect", "bridge").stdout)[0]
    assert net["IPAM"]["Config"][0] == {"Subnet": "10.213.79.128/25", "Gateway": "10.213.79.129"}
    assert net["Id"] == first["Id"]


def test_bip_overlapping_a_network_stops_the_start(tmp_path: Path, make_daemon) -> None:
    d = make_daemon()
    r = d.docker("network", "create", "--subnet", "10.213.81.0/24", "taken81")
    assert r.returncode == 0, r.stderr.decode()
    d.stop()
    conf = tmp_path / "dockyardd.toml"
    conf.write_text('bip = "10.213.81.1/16"\n')
    bad = make_daemon("--config-file", str(conf), base=d.base, start=False)
    with pytest.raises(RuntimeError) as err:
        bad.start(timeout=60)
    assert "dockyardd: error: bip 10.213.81.1/16: overlaps network taken81 (10.213.81.0/24)" in str(err.value)
    d.start()  # without the bip: the network is still there, and the fixture removes it
    assert d.docker("network", "inspect", "taken81").returncode == 0
