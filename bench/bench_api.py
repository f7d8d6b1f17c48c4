"""Benchmark of the daemon's API path (needs root, cc and /bin/busybox).

    /work/main/.venv/bin/python bench/bench_api.py [--runs 3] [--seconds 10] [--connections 32]
                                                   [--list-requests 1000] [--containers 50]

Measures, against a private dockyardd (own data root, socket and cgroup parent in a temp dir):

1. ``GET /_ping`` requests/s with 32 keep-alive connections for 10 s, driven by
   ``bench/unixload.c`` (an epoll load generator compiled on the fly: wrk and ab cannot talk
   to a Unix socket); also the daemon's CPU time per ping.
2. The idle daemon's PSS right after start, after 1,000 pings and after the load test.
3. The daemon's CPU time per ``GET /containers/json?all=1`` with 50 containers, created and
   then running ``sleep``: utime+stime of the daemon process over N requests / N.

Also one run on ``/v1.44/_ping``: docker clients put the API version in every path.
Each measurement is repeated ``--runs`` times; medians are printed with p10/p90.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (Api, command_line, cpu_seconds, create_body, engine, fmt, pss_kb,  # noqa: E402
                    ratio, report, stats)

REF = {
    "rps": {"dockerd": 52000, "Podman": 21000},
    "pss_mb": {"dockerd+containerd": 128, "Podman service": 34},
    "list_ms": {"dockerd": 2.5, "Podman": 50},
}
GOAL = {"pss_mb": 40, "list_ms": 0.5}


def build_loadgen(tmp: Path) -> Path:
    src = Path(__file__).with_name("unixload.c")
    exe = tmp / "unixload"
    subprocess.run(["cc", "-O2", "-o", str(exe), str(src)], check=True)
    return exe


def run_load(exe: Path, sock: Path, conns: int, seconds: float, path: str = "/_ping") -> dict[str, float]:
    out = subprocess.run([str(exe), str(sock), path, str(conns), str(seconds)],
                         capture_output=True, text=True, timeout=seconds + 30)
    if out.returncode != 0:
        raise RuntimeError(f"unixload failed: {out.stderr}")
    return {k: float(v) for k, v in (kv.split("=") for kv in out.stdout.split())}


def pings(api: Api, n: int) -> None:
    for _ in range(n):
        status, _ = api.call("GET", "/_ping")
        assert status == 200


def cpu_per_request(pid: int, api: Api, url: str, n: int) -> tuple[float, float]:
    """(daemon CPU seconds per request, wall seconds per request) over n sequential requests."""
    c0, t0 = cpu_seconds(pid), time.perf_counter()
    for _ in range(n):
        status, _ = api.call("GET", url)
        assert status == 200
    return (cpu_seconds(pid) - c0) / n, (time.perf_counter() - t0) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3, help="repetitions of each measurement")
    ap.add_argument("--seconds", type=float, default=10, help="duration of one /_ping load run")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--list-requests", type=int, default=1000, help="requests per /containers/json run")
    ap.add_argument("--containers", type=int, default=50)
    ap.add_argument("--skip-load", action="store_true", help="skip the /_ping load test")
    ap.add_argument("--versioned-runs", type=int, default=1,
                    help="load runs on /v1.44/_ping (what docker clients send), after the /_ping runs")
    args = ap.parse_args()

    print(f"# {command_line()}")
    with tempfile.TemporaryDirectory(prefix="dockyard-bench-cc-") as cc_tmp, engine(load_busybox=False) as eng:
        pid = eng.pid
        api = eng.api()
        # -- idle memory --------------------------------------------------------------
        time.sleep(1.0)
        pss_start = pss_kb(pid)
        pings(api, 1000)
        time.sleep(0.2)
        pss_1000 = pss_kb(pid)

        # -- /_ping throughput ---------------------------------------------------------
        rps, cpu_per_ping, loadgen_cpu, rps_v = [], [], [], []
        if not args.skip_load:
            exe = build_loadgen(Path(cc_tmp))
            run_load(exe, eng.socket, args.connections, 1.0)  # warm-up
            for _ in range(args.runs):
                c0 = cpu_seconds(pid)
                r = run_load(exe, eng.socket, args.connections, args.seconds)
                cpu = cpu_seconds(pid) - c0
                rps.append(r["rps"])
                cpu_per_ping.append(cpu / max(r["responses"], 1))
                loadgen_cpu.append(cpu / r["seconds"])  # daemon CPU utilisation (cores)
                if r["errors"]:
                    print(f"  warning: {r['errors']:.0f} connection errors in a load run")
            for _ in range(args.versioned_runs):
                rps_v.append(run_load(exe, eng.socket, args.connections, args.seconds, "/v1.44/_ping")["rps"])
        time.sleep(0.5)
        pss_load = pss_kb(pid)

        # -- /containers/json with N containers --------------------------------------------
        eng.daemon.load(_busybox_tar(Path(cc_tmp)))
        ids = [api.json("POST", "/containers/create", create_body("sleep", "1000"))["Id"]
               for _ in range(args.containers)]
        url = "/containers/json?all=1"
        body = api.json("GET", url)
        assert len(body) == args.containers, len(body)
        cpu_per_ping_seq, _ = cpu_per_request(pid, api, "/_ping", 1000)
        created = [cpu_per_request(pid, api, url, args.list_requests) for _ in range(args.runs)]

        def start(cid: str) -> None:
            a = eng.api()
            a.json("POST", f"/containers/{cid}/start")
            a.close()

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(start, ids))
        body = api.json("GET", url)
        assert sum(c["State"] == "running" for c in body) == args.containers
        running = [cpu_per_request(pid, api, url, args.list_requests) for _ in range(args.runs)]
        pss_after_list = pss_kb(pid)
        api.close()

    print("\nResults (machine: 2 vCPU, shared with other engineers' test runs):")
    print(f"\n/_ping, {args.connections} keep-alive connections over the Unix socket, {args.seconds:g} s x {len(rps)} runs:")
    if rps:
        m = stats(rps)[0]
        report("requests/s", fmt(rps, "req/s", 1.0, 0), {k: f"{v} ({ratio(m, v, False)})" for k, v in REF["rps"].items()})
        report("daemon CPU per ping under load", fmt(cpu_per_ping, "us", 1e6, 1), {})
        report("daemon CPU utilisation during the run", fmt(loadgen_cpu, "cores", 1.0, 2), {})
    if rps_v:
        report("requests/s on /v1.44/_ping (versioned path)", fmt(rps_v, "req/s", 1.0, 0), {})
    report("daemon CPU per ping, sequential (one connection)", f"{cpu_per_ping_seq * 1e6:.1f} us", {})

    print("\nIdle daemon memory (PSS of the dockyardd process):")
    for label, kb in (("after start (+1 s)", pss_start), ("after 1,000 pings", pss_1000),
                      ("after the load test", pss_load)):
        mb = kb / 1024
        report(label, f"{mb:.1f} MB", {k: f"{v} MB ({ratio(mb, v)})" for k, v in REF["pss_mb"].items()},
               f"< {GOAL['pss_mb']} MB")
    report(f"after {args.containers} containers + list runs", f"{pss_after_list / 1024:.1f} MB", {})

    print(f"\nDaemon CPU per GET {url} with {args.containers} containers ({args.list_requests} requests x {args.runs} runs):")
    for label, res in (("created", created), ("running sleep", running)):
        cpu = [c for c, _ in res]
        wall = [w for _, w in res]
        m = stats(cpu)[0] * 1000
        report(f"{label}: CPU", fmt(cpu, "ms", 1000, 3),
               {k: f"{v} ms ({ratio(m, v)})" for k, v in REF["list_ms"].items()}, f"< {GOAL['list_ms']} ms")
        report(f"{label}: wall (client-observed latency)", fmt(wall, "ms", 1000, 3), {})


def _busybox_tar(tmp: Path) -> Path:
    from dockyard.testing.images import busybox_image_tar

    return busybox_image_tar(tmp / "busybox.tar")


if __name__ == "__main__":
    main()
