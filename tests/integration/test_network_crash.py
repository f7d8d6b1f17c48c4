"""Address allocations are written before use but not fsynced (NetworkService._join): a daemon
killed with SIGKILL in the middle of container starts must still never hand out an address
twice after its restart. Traffic only goes to the test network's own addresses."""

from __future__ import annotations

import json
import subprocess

import pytest

pytestmark = pytest.mark.privileged

NET = "tcrash"
SUBNET = "10.231.31.0/24"


def run(d, *args):
    r = d.docker(*args)
    assert r.returncode == 0, f"docker {' '.join(args)} failed: {r.stderr.decode()}"
    return r.stdout.decode().strip()


def addresses(d) -> dict[str, str]:
    """Each running container on the network -> its address, as inspect says (and checked
    against what its eth0 really has)."""
    out = {}
    for cid in run(d, "ps", "-q", "--no-trunc", "--filter", f"network={NET}").split():
        ip = run(d, "inspect", "-f", f"{{{{.NetworkSettings.Networks.{NET}.IPAddress}}}}", cid)
        assert ip, cid
        assert f"inet {ip}/24" in run(d, "exec", cid, "ip", "-o", "-4", "addr", "show", "eth0")
        out[cid] = ip
    return out


def test_no_address_is_handed_out_twice_after_kill_9_mid_start(make_daemon, busybox_tar):
    daemon = make_daemon()
    daemon.load(busybox_tar)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        run(daemon, "network", "create", "--subnet", SUBNET, NET)
        for _ in range(2):
            run(daemon, "run", "-d", "--network", NET, "busybox", "sleep", "300")
        env = {**daemon.env, "DOCKER_CONFIG": str(daemon.base / "docker-config")}
        procs = [subprocess.Popen(["docker", "-H", daemon.url, "run", "-d", "--network", NET, "busybox", "sleep",
                                   "300"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
                 for _ in range(6)]
        while all(p.poll() is None for p in procs):  # kill -9 when the first start is through:
            try:                                       # the others are somewhere mid-way
                procs[0].wait(timeout=0.005)
            except subprocess.TimeoutExpired:
                pass
        daemon.kill()
        for p in procs:
            p.communicate(timeout=60)
        daemon.start()

        before = addresses(daemon)
        assert len(before) >= 3  # the first two and at least the start that finished
        assert len(set(before.values())) == len(before)
        for _ in range(4):
            run(daemon, "run", "-d", "--network", NET, "busybox", "sleep", "300")
        after = addresses(daemon)
        assert set(before.items()) <= set(after.items())  # the survivors kept their addresses
        assert len(set(after.values())) == len(after)  # and nobody got one of theirs
        # the network's record agrees: one endpoint per running container, no address twice
        containers = json.loads(run(daemon, "network", "inspect", NET))[0]["Containers"]
        assert {cid: e["IPv4Address"].split("/")[0] for cid, e in containers.items()} == after
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        if daemon.proc is not None and daemon.proc.poll() is None:
            ids = daemon.docker("ps", "-aq").stdout.decode().split()
            if ids:
                daemon.docker("rm", "-f", *ids)
            daemon.docker("network", "rm", NET)
        daemon.stop()
