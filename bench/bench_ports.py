"""Benchmark of published ports (needs root and /bin/busybox).

    /work/main/.venv/bin/python bench/bench_ports.py [--runs 30] [-n 20] [--seconds 1] [--threads 8]
        [--baseline-pythonpath DIR]

A private dockyardd runs busybox ``httpd`` containers on the default bridge with port 80
published on every address (a random host port), one container per path (see
:func:`start_httpd` for why). The same client (Python sockets, one
``GET / HTTP/1.0`` per connection: busybox httpd has no keep-alive) then asks it three ways:

* direct: the container's own address, port 80 (no NAT, no proxy): the reference;
* DNAT:   the host's own address on our bridge (the gateway) and the published port: the
          kernel rewrites it in the ``output`` nat hook, nothing in userland;
* loopback: 127.0.0.1 and the published port: DNAT in the ``output`` hook too, now that our
          bridges have ``route_localnet`` (before: the daemon's asyncio userland proxy).

Per path: the latency of sequential requests (``-n`` per round, median over all rounds),
requests per second with ``--threads`` concurrent clients (``ab`` if installed) for ``--seconds`` per round (median of
the rounds, and the median of each round's ratio to the direct run of the same round), and
the daemon's CPU per 1000 requests (near 0 when the kernel does the forwarding: the proof that
a path bypasses the proxy). The paths take turns round by round, in a rotating order, so the
noise of this shared machine hits all of them alike.

Then, with ``ab``, paired rounds: ``ab`` on direct and ``ab`` on one other path at the same
moment (``--threads``/2 clients each), the ratio of their rates per round: the fairest view on
a shared machine, since both halves see the same noise.

``--baseline-pythonpath DIR`` starts a second daemon with ``PYTHONPATH=DIR`` (e.g. a copy of
an older ``dockyard`` and ``dockyard_net_bridge``) and interleaves its paths with ours.
The goal (issue 5): published-port throughput at least 0.9x direct.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import shutil
import socket
import subprocess
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import command_line, cpu_seconds, create_body, engines, fmt, stats, wait_until  # noqa: E402

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


def throughput(addr: tuple[str, int], seconds: float, threads: int) -> tuple[float, int]:
    """(requests/s, requests): ApacheBench (``ab``, C, no keep-alive) when installed, which
    leaves more of the 2 CPUs to the paths than Python client threads; else Python threads."""
    if shutil.which("ab"):  # ab's -t takes whole seconds
        cmd = ["ab", "-q", "-r", "-t", str(max(1, round(seconds))), "-n", "10000000", "-c", str(threads),
               f"http://{addr[0]}:{addr[1]}/"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:  # once more: every round should use the same client
            proc = subprocess.run(cmd, capture_output=True, text=True)
        done = re.search(r"^Complete requests:\s+(\d+)", proc.stdout, re.M)
        rate = re.search(r"^Requests per second:\s+([\d.]+)", proc.stdout, re.M)
        failed = re.search(r"^Failed requests:\s+(\d+)", proc.stdout, re.M)
        if done and rate:
            if failed and int(failed.group(1)):
                print(f"      ({failed.group(1)} failed requests to {addr})", file=sys.stderr)
            return float(rate.group(1)), int(done.group(1))
        print(f"      ab failed: {proc.stderr.strip()[:200]}", file=sys.stderr)
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
    return sum(done) / (time.monotonic() - t0), sum(done)


def paired(direct: tuple[str, int], other: tuple[str, int], seconds: float, clients: int) -> float:
    """Requests/s of ``other`` over ``direct`` with both loaded at the same moment by two ``ab``
    runs of ``clients`` each: whatever else the machine does hits both alike. The container's
    httpd serves both, so equal per-request costs give 1.0."""
    procs = [subprocess.Popen(["ab", "-q", "-r", "-t", str(max(1, round(seconds))), "-n", "10000000", "-c",
                               str(clients), f"http://{a[0]}:{a[1]}/"], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True) for a in (direct, other)]
    rates = []
    for proc in procs:
        out = proc.communicate()[0]
        m = re.search(r"^Requests per second:\s+([\d.]+)", out, re.M)
        rates.append(float(m.group(1)) if m else 0.0)
    return rates[1] / rates[0] if rates[0] else 0.0


def start_httpd(eng) -> tuple[dict[str, tuple[str, int]], object]:
    """Three identical httpd containers with port 80 published on every address, one per path.

    One container per path, because the paths share the client's source address (the
    bridge's): a DNATed connection's reply tuple (container:80 -> bridge:port) is the same as a
    direct connection's from the same client port, so with one container a DNAT SYN that
    reuses a client port whose direct conntrack entry is still there (TIME_WAIT: 120 s) is
    dropped as a clash and retried a second later. That, not the DNAT, made the first runs
    show DNAT at 0.3-0.7x direct."""
    api = eng.api()
    body = create_body("sh", "-c", HTTPD, PortBindings={"80/tcp": [{"HostIp": "", "HostPort": ""}]})
    body["HostConfig"]["NetworkMode"] = "bridge"
    body["ExposedPorts"] = {"80/tcp": {}}
    infos = []
    for _ in range(3):
        cid = api.json("POST", "/containers/create", body)["Id"]
        api.json("POST", f"/containers/{cid}/start")
        infos.append(api.json("GET", f"/containers/{cid}/json"))
    net = [next(iter(i["NetworkSettings"]["Networks"].values())) for i in infos]
    port = [int(i["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"]) for i in infos]
    paths = {
        "direct": (net[0]["IPAddress"], 80),
        "DNAT": (net[1]["Gateway"], port[1]),
        "loopback": ("127.0.0.1", port[2]),
    }
    for addr in paths.values():
        assert wait_until(lambda a=addr: _answers(a), 20), f"{addr} does not answer"
    return paths, api


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("-n", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--baseline-pythonpath", default="", help="a second daemon on older code, interleaved")
    args = ap.parse_args()
    with contextlib.ExitStack() as stack:
        paths, pids = {}, {}
        for tag, eng in engines(stack, args.baseline_pythonpath,
                                ("before", "now" if args.baseline_pythonpath else "")).items():
            p, api = start_httpd(eng)
            stack.callback(api.close)
            for name, addr in p.items():
                key = f"{name} ({tag})" if tag else name
                paths[key], pids[key] = addr, eng.pid
        lat: dict[str, list[float]] = {k: [] for k in paths}
        rps: dict[str, list[float]] = {k: [] for k in paths}
        ratio: dict[str, list[float]] = {k: [] for k in paths}
        cpu: dict[str, list[float]] = {k: [] for k in paths}
        names = list(paths)
        for i in range(args.runs):
            order = names[i % len(names):] + names[:i % len(names)]  # rotating: noise hits every path alike
            this: dict[str, float] = {}
            for name in order:
                addr = paths[name]
                lat[name] += latency(addr, args.n)
                c0 = cpu_seconds(pids[name])
                r, count = throughput(addr, args.seconds, args.threads)
                cpu[name].append((cpu_seconds(pids[name]) - c0) / max(count, 1) * 1000)
                rps[name].append(r)
                this[name] = r
            for name in names:
                direct = this[name.replace(name.split(" ")[0], "direct", 1)]
                ratio[name].append(this[name] / direct if direct else 0.0)
        pairs: dict[str, list[float]] = {}
        if shutil.which("ab"):
            others = [k for k in names if not k.startswith("direct")]
            for i in range(args.runs):
                for name in others[i % len(others):] + others[:i % len(others)]:
                    direct_key = name.replace(name.split(" ")[0], "direct", 1)
                    pairs.setdefault(name, []).append(
                        paired(paths[direct_key], paths[name], args.seconds, max(1, args.threads // 2)))
        print(f"published port benchmark: {command_line()}")
        print("| path | latency per request | requests/s (median of rounds, p10-p90) | vs direct "
              "(ratio of medians; median of per-round ratios) | daemon CPU per 1000 requests |")
        print("|---|---|---|---|---|")
        for name in names:
            r = statistics.median(rps[name])
            _, lo, hi = stats(rps[name])
            direct = statistics.median(rps[name.replace(name.split(" ")[0], "direct", 1)])
            print(f"| {name} {paths[name][0]}:{paths[name][1]} | {fmt(lat[name], digits=3)} | "
                  f"{r:,.0f} ({lo:,.0f}-{hi:,.0f}, n={len(rps[name])}) | {r / direct:.2f}x; "
                  f"{statistics.median(ratio[name]):.2f}x | {statistics.median(cpu[name]) * 1000:.0f} ms |")
        if pairs:
            print(f"\npaired rounds (ab -c {max(1, args.threads // 2)} on direct and on the path at the same time): "
                  "requests/s of the path / direct")
            for name, xs in pairs.items():
                _, lo, hi = stats(xs)
                print(f"  {name}: {statistics.median(xs):.2f}x (p10 {lo:.2f}, p90 {hi:.2f}, n={len(xs)})")


def _answers(addr: tuple[str, int]) -> bool:
    try:
        return get(addr)
    except OSError:
        return False


if __name__ == "__main__":
    main()
