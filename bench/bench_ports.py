"""Benchmark of published ports (needs root and /bin/busybox).

    /work/main/.venv/bin/python bench/bench_ports.py [--runs 30] [-n 20] [--seconds 1] [--threads 8]

A private dockyardd runs one busybox ``httpd`` container on the default bridge with port 80
published on every address (a random host port). The same client (Python sockets, one
``GET / HTTP/1.0`` per connection: busybox httpd has no keep-alive) then asks it three ways:

* direct: the container's own address, port 80 (no NAT, no proxy): the reference;
* DNAT:   the host's own address on our bridge (the gateway) and the published port: the
          kernel rewrites it in the ``output`` nat hook, nothing in userland;
* proxy:  127.0.0.1 and the published port: the daemon's asyncio userland proxy (DNAT to
          loopback would need ``route_localnet``, which we do not turn on).

Per path: the latency of sequential requests (``-n`` per round, median over all rounds), and
requests per second with ``--threads`` client threads for ``--seconds`` per round (median of
the rounds). The paths take turns round by round, so the noise of this shared machine hits
all three alike.
The goal (issue 5): published-port throughput at least 0.9x direct.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import command_line, create_body, engine, fmt, stats, wait_until  # noqa: E402

HTTPD = "mkdir -p /www && echo hello > /www/index.html && exec httpd -f -p 80 -h /www"
REQUEST = b"GET / HTTP/1.0\r\nHost: x\r\n\r\n"


def get(addr: tuple[str, int]) -> bool:
    with socket.create_connection(addr, timeout=10) as s:
        s.sendall(REQUEST)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data.startswith(b"HTTP/1.") and b" 200 " in data[:20]


def latency(addr: tuple[str, int], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        assert get(addr)
        out.append(time.perf_counter() - t0)
    return out


def throughput(addr: tuple[str, int], seconds: float, threads: int) -> float:
    done = [0] * threads
    errors = [0] * threads
    stop = time.monotonic() + seconds

    def worker(i: int) -> None:
        while time.monotonic() < stop:
            try:
                if get(addr):
                    done[i] += 1
            except OSError:
                errors[i] += 1

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    t0 = time.monotonic()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if sum(errors):
        print(f"      ({sum(errors)} failed requests to {addr})", file=sys.stderr)
    return sum(done) / (time.monotonic() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("-n", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=8)
    args = ap.parse_args()
    with engine() as eng:
        api = eng.api()
        body = create_body("sh", "-c", HTTPD, PortBindings={"80/tcp": [{"HostIp": "", "HostPort": ""}]})
        body["HostConfig"]["NetworkMode"] = "bridge"
        body["ExposedPorts"] = {"80/tcp": {}}
        cid = api.json("POST", "/containers/create", body)["Id"]
        api.json("POST", f"/containers/{cid}/start")
        info = api.json("GET", f"/containers/{cid}/json")
        net = next(iter(info["NetworkSettings"]["Networks"].values()))
        host_port = int(info["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"])
        paths = {
            "direct": (net["IPAddress"], 80),
            "DNAT": (net["Gateway"], host_port),
            "proxy": ("127.0.0.1", host_port),
        }
        for addr in paths.values():
            assert wait_until(lambda a=addr: _answers(a), 20), f"{addr} does not answer"
        lat: dict[str, list[float]] = {k: [] for k in paths}
        rps: dict[str, list[float]] = {k: [] for k in paths}
        for _ in range(args.runs):
            for name, addr in paths.items():  # interleaved: noise hits every path alike
                lat[name] += latency(addr, args.n)
                rps[name].append(throughput(addr, args.seconds, args.threads))
        print(f"published port benchmark: {command_line()}")
        print("| path | latency per request | requests/s (median of rounds, p10-p90) | vs direct |")
        print("|---|---|---|---|")
        direct = statistics.median(rps["direct"])
        for name in paths:
            r = statistics.median(rps[name])
            _, lo, hi = stats(rps[name])
            print(f"| {name} {paths[name][0]}:{paths[name][1]} | {fmt(lat[name], digits=3)} | "
                  f"{r:,.0f} ({lo:,.0f}-{hi:,.0f}, n={len(rps[name])}) | {r / direct:.2f}x |")
        api.close()


def _answers(addr: tuple[str, int]) -> bool:
    try:
        return get(addr)
    except OSError:
        return False


if __name__ == "__main__":
    main()
