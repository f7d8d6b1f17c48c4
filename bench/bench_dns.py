"""The embedded DNS at 127.0.0.11: what it adds to a container start, and what a query costs.

    /work/main/.venv/bin/python bench/bench_dns.py [-n 30] [--baseline-pythonpath DIR]

1. The resolver of one container on its own, in this process (root): in a fresh pinned
   namespace, ``ContainerDNS.start`` (a thread that setns-es, binds UDP and TCP on 127.0.0.11,
   writes the DNAT table) and ``close``. Two ways of writing the table are compared: libnftables
   in that thread (what the daemon does) and ``nsenter --net=PATH nft -f -``.
2. API cycle create+start+wait+delete of ``true`` on a user network and with ``NetworkMode:
   none``, alternating, against a private dockyardd; the difference is what the user network
   (veth, address, DNS) costs a container. ``--baseline-pythonpath DIR`` also runs a daemon on
   older code (e.g. the per-network gateway servers) interleaved with ours: before/after.
3. One query answered in-process (``Resolver.answer``, wire in, wire out) by the resolver of a
   container on 3 of 20 user networks of 10 containers: a name on its third network, a PTR on
   its second, a name nobody has (SERVFAIL, no upstream). Each sample the mean of 2,000 queries.

dockerd is not installed here, so there is no side-by-side number.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import api_cycle, command_line, engines, fmt, report  # noqa: E402

from dnslib import DNSRecord  # noqa: E402

from dockyard.drivers.network import Endpoint, Network  # noqa: E402
from dockyard.networks import dns, netns  # noqa: E402
from dockyard.networks.record import NetRecord  # noqa: E402


# -- 1. the resolver's start and stop in a namespace ---------------------------------------------

def resolver_start_stop(n: int) -> dict[str, list[float]]:
    tmp = Path(tempfile.mkdtemp(prefix="dockyard-bench-dns-"))
    out: dict[str, list[float]] = {"start (libnftables)": [], "close": [], "start (nsenter nft)": []}

    def nsenter_bind(path: Path) -> None:
        def bind() -> tuple:
            import socket
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            u.bind((dns.ADDRESS, 0))
            t.bind((dns.ADDRESS, 0))
            t.listen(64)
            return u, t

        u, t = netns.run_in(path, bind)
        subprocess.run(["nsenter", f"--net={path}", "nft", "-f", "-"], check=True,
                       input=dns.redirect_rules(u.getsockname()[1], t.getsockname()[1]).encode())
        u.close()
        t.close()

    async def run() -> None:
        resolver = dns.Resolver(lambda name: None, upstreams=lambda: [])
        for i in range(n + 3):
            path = tmp / f"ns{i}"
            netns.create(path)
            try:
                server = dns.ContainerDNS(resolver)
                t0 = time.perf_counter()
                await server.start(path)
                t1 = time.perf_counter()
                server.close()
                t2 = time.perf_counter()
            finally:
                netns.remove(path)
            netns.create(path)
            try:
                t3 = time.perf_counter()
                if shutil.which("nsenter"):
                    await asyncio.to_thread(nsenter_bind, path)
                t4 = time.perf_counter()
            finally:
                netns.remove(path)
            if i >= 3:  # warm-up
                out["start (libnftables)"].append(t1 - t0)
                out["close"].append(t2 - t1)
                out["start (nsenter nft)"].append(t4 - t3)

    try:
        asyncio.run(run())
    finally:
        for path in netns.mounted_under(tmp):
            netns.remove(path)
        shutil.rmtree(tmp, ignore_errors=True)
    return out


# -- 2. API cycles -----------------------------------------------------------------------------

def api_cycles(n: int, baseline: str) -> dict[tuple[str, str], list[float]]:
    with contextlib.ExitStack() as stack:
        apis = {tag: eng.api() for tag, eng in engines(stack, baseline, ("baseline", "this tree")).items()}
        for a in apis.values():
            a.json("POST", "/networks/create", {"Name": "benchdns"})
        runs = [(tag, mode) for tag in apis for mode in ("benchdns", "none")]
        for tag, mode in runs:
            api_cycle(apis[tag], {"NetworkMode": mode})  # warm-up
        cycles: dict[tuple[str, str], list[float]] = {r: [] for r in runs}
        for i in range(n):
            for tag, mode in runs[i % len(runs):] + runs[:i % len(runs)]:  # rotating order
                cycles[(tag, mode)].append(api_cycle(apis[tag], {"NetworkMode": mode}))
        for a in apis.values():
            a.json("DELETE", "/networks/benchdns")
            a.close()
    return cycles


# -- 3. queries --------------------------------------------------------------------------------

def service(networks: int, per_network: int) -> SimpleNamespace:
    records, containers = {}, {}
    for i in range(networks):
        rec = NetRecord(Network(id=f"{i:064x}", name=f"net{i}", driver="bridge", subnet=f"10.{i}.0.0/24",
                                gateway=f"10.{i}.0.1"))
        records[rec.id] = rec
        for j in range(per_network):
            cid = f"{i:032x}{j:032x}"
            containers[cid] = SimpleNamespace(name=f"c{i}-{j}", host_config={},
                                              networks={rec.name: {"NetworkID": rec.id}})
            rec.endpoints[cid] = Endpoint(id=cid, network_id=rec.id, container_id=cid, netns="", ifname="eth0",
                                          address=f"10.{i}.0.{j + 2}/24", aliases=[f"alias{i}-{j}"])
    asker = "f" * 64
    containers[asker] = SimpleNamespace(name="asker", host_config={}, networks={})
    for i in (0, networks // 2, networks - 1):
        rec = records[f"{i:064x}"]
        containers[asker].networks[rec.name] = {"NetworkID": rec.id}
        rec.endpoints[f"asker{i}"] = Endpoint(id=f"asker{i}", network_id=rec.id, container_id=asker, netns="",
                                              ifname=f"eth{i}", address=f"10.{i}.0.250/24")
    return SimpleNamespace(records=records, daemon=SimpleNamespace(containers=SimpleNamespace(containers=containers)))


def per_query(resolver: dns.Resolver, data: bytes, batch: int = 2000) -> float:
    async def run() -> float:
        t = time.perf_counter()
        for _ in range(batch):
            await resolver.answer(data)
        return (time.perf_counter() - t) / batch

    return asyncio.run(run())


def queries(n: int, networks: int = 20, per_network: int = 10) -> None:
    svc = service(networks, per_network)
    r = dns.resolver_for(svc, "f" * 64)
    r.upstreams = lambda: []
    last, mid = networks - 1, networks // 2
    cases = [
        ("name on its third network", f"alias{last}-3", "A"),
        ("PTR on its second network", f"3.0.{mid}.10.in-addr.arpa", "PTR"),
        ("unknown name (SERVFAIL, no upstream)", "nobody", "A"),
    ]
    samples: dict[str, list[float]] = {c[0]: [] for c in cases}
    for case in cases:  # every case answers as described before anything is timed
        reply = DNSRecord.parse(asyncio.run(r.answer(DNSRecord.question(case[1], case[2]).pack())))
        assert bool(reply.rr) == (case[1] != "nobody"), (case, reply)
    for _ in range(n):  # interleaved so every case sees the same noise
        for title, name, qtype in cases:
            samples[title].append(per_query(r, DNSRecord.question(name, qtype).pack()))
    endpoints = sum(len(rec.endpoints) for rec in svc.records.values())
    print(f"one query, a container on 3 of {networks} networks ({endpoints} endpoints):")
    for title, *_ in cases:
        report(title, fmt(samples[title], "µs", 1e6), {})


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("-n", type=int, default=30)
    p.add_argument("--baseline-pythonpath", default="", help="a second daemon on older code, interleaved")
    p.add_argument("--skip-api", action="store_true")
    a = p.parse_args()
    print("a container's resolver in a fresh namespace, in-process:")
    for title, xs in resolver_start_stop(a.n).items():
        report(title, fmt(xs, "ms", 1000.0, 2), {})
    if not a.skip_api:
        cycles = api_cycles(a.n, a.baseline_pythonpath)
        print("API create+start+wait+delete of `true`:")
        for tag in dict.fromkeys(t for t, _ in cycles):
            user, none = cycles[(tag, "benchdns")], cycles[(tag, "none")]
            report(f"{tag}: user network", fmt(user), {})
            report(f"{tag}: --network none", fmt(none), {})
            print(f"  {tag}: added by the user network (difference of medians): "
                  f"{(statistics.median(user) - statistics.median(none)) * 1000:.1f} ms")
    queries(a.n)
    print(f"\n{command_line()}")


if __name__ == "__main__":
    main()
