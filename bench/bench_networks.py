"""Networks: what the bridge costs a container, and network create+rm (needs root, /bin/busybox).

    /work/main/.venv/bin/python bench/bench_networks.py [-n 30] [--baseline-pythonpath DIR]

1. API cycle create+start+wait+delete of ``true`` on the default bridge and with
   ``NetworkMode: none``, alternating, against a private dockyardd; the difference is what
   the network costs a container (namespace, veth, address, route, allocation, teardown).
2. Network setup and teardown per container on its own, in this process: pin a namespace,
   ``BridgeDriver.join`` (veth pair, peer created in the namespace as eth0 with address, MAC,
   MTU, default route), then ``forget`` + unpin as the daemon does when a container exits, on
   a bridge made for the benchmark (removed afterwards). An explicit veth delete (``leave``,
   used by ``network disconnect``) is measured too: it waits for an RCU grace period.
3. ``POST /networks/create`` + ``DELETE /networks/{id}`` of a bridge network (bridge device,
   subnet choice, nftables table rewrite), over the API.

``--baseline-pythonpath DIR`` also starts a daemon with ``PYTHONPATH=DIR`` (a copy of older
``dockyard`` and ``dockyard_net_bridge`` packages) and interleaves its API cycles with ours.

Issue goals: setup+teardown under 5 ms (measured here before: 4 ms with ``ip -batch``, 6 ms with
pyroute2 and setns, 12 ms with pyroute2's NetNS); API cycle on the default bridge under 30 ms
(dockerd 231 ms, Podman 400+ ms). dockerd is not installed here: no side-by-side run.
"""

from __future__ import annotations

import argparse
import contextlib
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import api_cycle, command_line, engines, fmt, report  # noqa: E402


def network_cycle(api, i: int) -> float:
    t = time.perf_counter()
    nid = api.json("POST", "/networks/create", {"Name": f"bench-{i}"})["Id"]
    api.json("DELETE", f"/networks/{nid}")
    return time.perf_counter() - t


def wiring(n: int) -> tuple[list[float], list[float], list[float]]:
    """(setup, teardown, explicit leave) seconds per container, driver level, in this process."""
    from dockyard.drivers.network import Endpoint, Network
    from dockyard.networks import ipam, netns
    from dockyard_net_bridge.bridge import BridgeDriver

    tmp = Path(tempfile.mkdtemp(prefix="dockyard-bench-net-"))
    driver = BridgeDriver(config={"instance": "bench" + secrets.token_hex(2)}, root=tmp, state=tmp)
    subnet = ipam.pick_subnet([])
    gateway = str(next(subnet.hosts()))
    net = Network(id=secrets.token_hex(32), name="bench", driver="bridge", subnet=str(subnet), gateway=gateway)
    driver.create(net)
    setup, teardown, explicit = [], [], []
    try:
        for i in range(n + 3):
            path = tmp / f"ns{i}"
            ep = Endpoint(id=secrets.token_hex(32), network_id=net.id, container_id=str(i), netns=str(path),
                          ifname="eth0", address=f"{list(subnet.hosts())[i + 1]}/{subnet.prefixlen}",
                          gateway=gateway, mac="02:42:0a:00:00:02")
            t0 = time.perf_counter()
            netns.create(path)
            driver.join(net, ep)
            t1 = time.perf_counter()
            driver.forget(net, ep)  # what the daemon does when a container exits:
            netns.remove(path)  # the kernel deletes the veth pair with the namespace, in the background
            t2 = time.perf_counter()
            if i >= 3:  # warm-up
                setup.append(t1 - t0)
                teardown.append(t2 - t1)
                netns.create(path)
                ep.id = secrets.token_hex(32)  # the forgotten pair may still be on its way out
                driver.join(net, ep)
                t3 = time.perf_counter()
                driver.leave(net, ep)
                explicit.append(time.perf_counter() - t3)
                netns.remove(path)
    finally:
        for path in netns.mounted_under(tmp):
            netns.remove(path)
        driver.delete(net)
        driver.close([], in_use=False)
        shutil.rmtree(tmp, ignore_errors=True)
    return setup, teardown, explicit


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=30, help="samples of each kind (>= 30)")
    ap.add_argument("--baseline-pythonpath", default="", help="a second daemon on older code, interleaved")
    args = ap.parse_args()
    setup, teardown, explicit = wiring(args.n)
    print("network wiring per container (driver level, no daemon):")
    report("setup (netns + veth + addr + route)", fmt(setup), {})
    report("teardown (forget + unpin; the kernel removes the veth)", fmt(teardown), {})
    report("explicit veth delete (disconnect)", fmt(explicit), {})
    report("setup + teardown", fmt([a + b for a, b in zip(setup, teardown)]), {"ip -batch": "4 ms",
           "pyroute2 setns": "6 ms", "pyroute2 NetNS": "12 ms"}, "< 5 ms")
    with contextlib.ExitStack() as stack:
        apis = {tag: eng.api() for tag, eng in engines(stack, args.baseline_pythonpath, ("baseline ", "")).items()}
        api = apis[""]
        runs = [(tag, mode) for tag in apis for mode in ("bridge", "none")]
        for tag, mode in runs:
            api_cycle(apis[tag], {"NetworkMode": mode})  # warm-up
        cycles: dict[tuple[str, str], list[float]] = {r: [] for r in runs}
        for i in range(args.n):
            for tag, mode in runs[i % len(runs):] + runs[:i % len(runs)]:  # rotating order
                cycles[(tag, mode)].append(api_cycle(apis[tag], {"NetworkMode": mode}))
        nets = [network_cycle(api, i) for i in range(args.n)]
        for a in apis.values():
            a.close()
    print("API create+start+wait+delete of `true`:")
    for tag in apis:
        bridge, none = cycles[(tag, "bridge")], cycles[(tag, "none")]
        report(f"{tag}default bridge", fmt(bridge), {"dockerd": "231 ms", "Podman": "400+ ms"}, "< 30 ms")
        report(f"{tag}--network none", fmt(none), {})
        print(f"  {tag}added by the bridge (difference of medians): "
              f"{(statistics.median(bridge) - statistics.median(none)) * 1000:.1f} ms")
    print("network create + rm over the API:")
    report("bridge network", fmt(nets), {})
    print(f"\n{command_line()}")


if __name__ == "__main__":
    main()
