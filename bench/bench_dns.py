"""What a query to the embedded DNS costs in the daemon since names are scoped by the asker.

    /work/main/.venv/bin/python bench/bench_dns.py [-n 30] [--networks 20] [--per-network 10]

No daemon, no sockets: ``Resolver.answer`` on wire-format queries with the daemon's own
``lookup_for``/``reverse_for`` over real ``NetRecord`` objects (``--networks`` user networks of
``--per-network`` containers each, plus an asker attached to three of them). Cases:

* an address that is no container's asks a name on the server's network (one network searched:
  the behaviour before the scoping, still used for unknown addresses);
* a container on three networks asks a name on its third one (finding the asker, then three
  networks searched);
* the same asker, a PTR for an address on its second network;
* the same asker, a name nobody has (all three searched; no upstream, so SERVFAIL at once).

Each sample is the mean of a batch of 2,000 queries; the median of n samples is reported.
dockerd is not installed here, so there is no side-by-side number.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import command_line, fmt, report  # noqa: E402

from dnslib import DNSRecord  # noqa: E402

from dockyard.drivers.network import Endpoint, Network  # noqa: E402
from dockyard.networks import dns  # noqa: E402
from dockyard.networks.record import NetRecord  # noqa: E402


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


def per_query(resolver: dns.Resolver, data: bytes, client: str, batch: int = 2000) -> float:
    async def run() -> float:
        t = time.perf_counter()
        for _ in range(batch):
            await resolver.answer(data, client)
        return (time.perf_counter() - t) / batch

    return asyncio.run(run())


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("-n", type=int, default=30)
    p.add_argument("--networks", type=int, default=20)
    p.add_argument("--per-network", type=int, default=10)
    a = p.parse_args()
    print(command_line())
    svc = service(a.networks, a.per_network)
    first = f"{0:064x}"
    r = dns.Resolver(dns.lookup_for(svc, first), upstreams=lambda: [], reverse=dns.reverse_for(svc, first))
    last, mid = a.networks - 1, a.networks // 2
    cases = [
        ("unknown address, name on the server's network", "c0-3", "10.0.0.200", "A"),
        ("asker on 3 networks, name on its third", f"alias{last}-3", "10.0.0.250", "A"),
        ("asker on 3 networks, PTR on its second", f"3.0.{mid}.10.in-addr.arpa", "10.0.0.250", "PTR"),
        ("asker on 3 networks, unknown name (SERVFAIL)", "nobody", "10.0.0.250", "A"),
    ]
    samples: dict[str, list[float]] = {c[0]: [] for c in cases}
    for case in cases:  # every case answers as described before anything is timed
        reply = DNSRecord.parse(asyncio.run(r.answer(DNSRecord.question(case[1], case[3]).pack(), case[2])))
        assert bool(reply.rr) == (case[1] != "nobody"), (case, reply)
    for _ in range(a.n):  # interleaved so every case sees the same noise
        for title, name, client, qtype in cases:
            samples[title].append(per_query(r, DNSRecord.question(name, qtype).pack(), client))
    endpoints = sum(len(rec.endpoints) for rec in svc.records.values())
    for title, *_ in cases:
        report(f"{title} ({a.networks} networks, {endpoints} endpoints)", fmt(samples[title], "µs", 1e6), {})


if __name__ == "__main__":
    main()
