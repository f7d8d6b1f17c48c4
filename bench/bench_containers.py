"""Benchmark of container lifecycles through the API and the docker CLI (needs root,
/bin/busybox, cc, and the `docker` CLI client for the CLI measurement).

    /work/main/.venv/bin/python bench/bench_containers.py [--runs 3] [-n 50] [--cli-n 30]
        [--containers 50] [--restart-containers 5] [--log-mb 106] [--only NAME ...]

NAME is one of: api, cli, concurrent, memory, logs, restart (memory needs concurrent and
runs with it). Against a private dockyardd (own data root, socket and cgroup parent in a
temp dir), it measures:

* api:        POST create + start + wait + DELETE of busybox `true` (NetworkMode none),
              sequentially over one keep-alive connection; median of n runs.
* cli:        wall time of `docker -H unix://... run --rm busybox true`; median of --cli-n runs.
* concurrent: create 50 `sleep 60` containers, then start them all at once (one thread and
              connection each) until /containers/json reports all running; --runs times.
* memory:     with those 50 running: (sum of PSS of our dockyard-shim monitors + daemon PSS
              delta between 0 and 50 running containers) / 50.
* logs:       `dd if=/dev/zero bs=1M count=106` run to exit (start -> wait returns), then the
              framed stdout read back through GET /containers/{id}/logs?stdout=1; --runs times.
              Also the same dd into a host pipe, for scale.
* restart:    5 `sleep` containers running, SIGKILL the daemon, start it again: time until
              /_ping answers and /containers/json lists all 5 running; checks the containers'
              pids did not change (live restore); --runs times.
"""

from __future__ import annotations

import argparse
import os
import statistics
import struct
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (Api, Engine, command_line, create_body, engine, fmt, pids_named, pss_kb,  # noqa: E402
                    ratio, report)

ALL = ("api", "cli", "concurrent", "memory", "logs", "restart")
REF = {  # (dockerd, Podman, goal) from the issues; seconds or MB
    "api": (0.175, 0.278, 0.020),
    "cli": (0.252, 0.274, 0.080),
    "concurrent": (4.4, 3.9, 1.0),
    "memory": (2.9, 0.54, 0.5),
    "logs_capture": (2.8, 1.3, 0.6),
    "logs_read": (4.6, 7.6, 1.0),
    "restart": (0.26, None, 0.3),
}
ROWS: list[tuple[str, str, float, tuple, str]] = []  # (name, our text, our median, refs, unit)


def row(name: str, xs: list[float], key: str, unit: str = "s") -> None:
    scale = {"s": 1.0, "ms": 1000.0, "MB": 1.0}[unit]
    digits = 3 if unit == "s" else (1 if unit == "ms" else 2)
    m = statistics.median(xs)
    ref = REF[key]
    refs = {}
    for label, v in zip(("dockerd", "Podman", "goal"), ref):
        if v is not None:
            refs[label] = f"{v * scale:g} {unit} ({ratio(m, v)})"
    report(name, fmt(xs, unit, scale, digits), refs)
    ROWS.append((name, f"{m * scale:.{digits}f} {unit}", m, ref, unit))
    sys.stdout.flush()


# -- measurements ------------------------------------------------------------------------

def bench_api(eng: Engine, n: int) -> None:
    api = eng.api()
    body = create_body("true")

    def cycle() -> float:
        t = time.perf_counter()
        cid = api.json("POST", "/containers/create", body)["Id"]
        api.json("POST", f"/containers/{cid}/start")
        res = api.json("POST", f"/containers/{cid}/wait")
        api.json("DELETE", f"/containers/{cid}")
        dt = time.perf_counter() - t
        assert res["StatusCode"] == 0, res
        return dt

    for _ in range(3):
        cycle()
    row("API create+start+wait+delete `true`", [cycle() for _ in range(n)], "api", "ms")
    api.close()


def bench_cli(eng: Engine, n: int) -> None:
    env = {**os.environ, "DOCKER_CONFIG": str(eng.base / "docker-config")}
    cmd = ["docker", "-H", f"unix://{eng.socket}", "run", "--rm", "busybox", "true"]

    def once() -> float:
        t = time.perf_counter()
        r = subprocess.run(cmd, env=env, capture_output=True, timeout=60)
        dt = time.perf_counter() - t
        if r.returncode != 0:
            raise RuntimeError(f"docker run failed: {r.stderr.decode()}")
        return dt

    for _ in range(3):
        once()
    row("docker run --rm busybox true (CLI wall)", [once() for _ in range(n)], "cli", "ms")
    # for scale: the CLI alone, talking to the daemon (one /_ping + /version)
    t = []
    for _ in range(10):
        t0 = time.perf_counter()
        subprocess.run(["docker", "-H", f"unix://{eng.socket}", "version", "--format", "{{.Server.Version}}"],
                       env=env, capture_output=True, timeout=60)
        t.append(time.perf_counter() - t0)
    report("  (for scale) docker version (CLI start + 2 API calls)", fmt(t), {})


def running_count(api: Api) -> int:
    return sum(c["State"] == "running" for c in api.json("GET", "/containers/json?all=1"))


def our_shims(eng: Engine) -> list[int]:
    out = []
    for pid in pids_named("dockyard-shim"):
        try:
            if str(eng.base).encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                out.append(pid)
        except OSError:
            pass
    return out


def remove(eng: Engine, cid: str) -> None:
    a = eng.api()
    try:
        a.json("DELETE", f"/containers/{cid}?force=1")
    finally:
        a.close()


def bench_concurrent(eng: Engine, count: int, runs: int, memory: bool) -> None:
    api = eng.api()
    body = create_body("sleep", "60")
    totals = []
    per_container_mb = []
    conns = [eng.api() for _ in range(count)]
    try:
        for run in range(runs):
            time.sleep(0.5)
            if run == 0:  # 0 containers; later runs' baselines include freed-but-kept heap
                daemon_before = pss_kb(eng.pid)
            ids = [api.json("POST", "/containers/create", body)["Id"] for _ in range(count)]
            t0 = []
            barrier = threading.Barrier(count, action=lambda: t0.append(time.perf_counter()))

            def start(i: int) -> None:
                barrier.wait()
                conns[i].json("POST", f"/containers/{ids[i]}/start")

            with ThreadPoolExecutor(count) as pool:
                futs = [pool.submit(start, i) for i in range(count)]
                for f in futs:
                    f.result()
                while running_count(api) < count:
                    time.sleep(0.002)
                totals.append(time.perf_counter() - t0[0])  # from the barrier's release
            if memory:
                time.sleep(1.0)  # let the monitors settle
                shims = our_shims(eng)
                assert len(shims) == count, (len(shims), count)
                shim_kb = sum(pss_kb(p) for p in shims)
                daemon_after = pss_kb(eng.pid)
                per = (shim_kb + max(daemon_after - daemon_before, 0)) / count / 1024
                per_container_mb.append(per)
                print(f"    run {run}: shims {shim_kb / count:.0f} kB each, daemon {daemon_before / 1024:.1f} -> "
                      f"{daemon_after / 1024:.1f} MB ({(daemon_after - daemon_before) / count:.0f} kB/container)")
            t = time.perf_counter()
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda cid: remove(eng, cid), ids))
            print(f"    run {run}: force-removed {count} running containers in {time.perf_counter() - t:.2f} s")
    finally:
        for c in conns:
            c.close()
    row(f"start {count} `sleep` containers concurrently until all running", totals, "concurrent", "s")
    if memory:
        row("memory per running container (shim PSS + daemon PSS delta)", per_container_mb, "memory", "MB")
    api.close()


def read_logs(sock: Path, cid: str) -> tuple[int, int]:
    """Stream the framed logs; return (payload bytes of stdout, frames)."""
    from dockyard_cli.client import UnixHTTPConnection

    conn = UnixHTTPConnection(str(sock), timeout=120)
    conn.request("GET", f"/containers/{cid}/logs?stdout=1")
    r = conn.getresponse()
    assert r.status == 200, r.status
    buf = bytearray()
    payload = frames = 0
    while True:
        chunk = r.read1(1 << 20)
        if not chunk:
            break
        buf += chunk
        pos = 0
        while len(buf) - pos >= 8:
            stream, size = struct.unpack_from(">BxxxI", buf, pos)
            if len(buf) - pos - 8 < size:
                break
            assert stream == 1, stream
            payload += size
            frames += 1
            pos += 8 + size
        del buf[:pos]
    conn.close()
    assert not buf, len(buf)
    return payload, frames


def bench_logs(eng: Engine, mb: int, runs: int) -> None:
    api = eng.api()
    capture, read = [], []
    for _ in range(runs):
        cid = api.json("POST", "/containers/create",
                       create_body("dd", "if=/dev/zero", "bs=1M", f"count={mb}",
                                   # keep all of it, like docker's json-file default (dockyard's
                                   # default, max-size 10m x 3 files, keeps only the last ~30 MB)
                                   LogConfig={"Type": "json-file", "Config": {"max-size": "0"}}))["Id"]
        t = time.perf_counter()
        api.json("POST", f"/containers/{cid}/start")
        res = api.json("POST", f"/containers/{cid}/wait")
        capture.append(time.perf_counter() - t)
        assert res["StatusCode"] == 0, res
        t = time.perf_counter()
        payload, frames = read_logs(eng.socket, cid)
        read.append(time.perf_counter() - t)
        assert payload == mb << 20, (payload, mb << 20)
        api.json("DELETE", f"/containers/{cid}")
    print(f"    ({frames} frames of {payload / frames / 1024:.0f} kB average)")
    host = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(f"/bin/busybox dd if=/dev/zero bs=1M count={mb} 2>/dev/null | cat >/dev/null",
                       shell=True, check=True)
        host.append(time.perf_counter() - t)
    row(f"{mb} MB stdout: run to exit (start -> wait)", capture, "logs_capture", "s")
    row(f"{mb} MB stdout: read back via /logs (framed)", read, "logs_read", "s")
    report(f"  (for scale) host pipe, busybox dd | cat, same {mb} MB", fmt(host, "s", 1, 3), {"reference machine": "0.29 s"})
    api.close()


def bench_restart(eng: Engine, count: int, runs: int) -> None:
    api = eng.api()
    ids = [api.json("POST", "/containers/create", create_body("sleep", "1000"))["Id"] for _ in range(count)]
    for cid in ids:
        api.json("POST", f"/containers/{cid}/start")
    pids = {cid: api.json("GET", f"/containers/{cid}/json")["State"]["Pid"] for cid in ids}
    api.close()
    d = eng.daemon
    times, ping_times = [], []
    for _ in range(runs):
        d.kill()  # SIGKILL
        log = open(d.log_path, "ab")
        t = time.perf_counter()
        d.proc = subprocess.Popen(d.command(), stdout=log, stderr=log, env=d.env, start_new_session=True)
        log.close()
        pinged = None
        deadline = t + 30
        while True:
            if time.perf_counter() > deadline or d.proc.poll() is not None:
                raise RuntimeError(f"daemon did not come back:\n{d.log()[-3000:]}")
            if pinged is None:
                if d.ping():
                    pinged = time.perf_counter() - t
                else:
                    time.sleep(0.002)
                    continue
            a = eng.api()
            try:
                body = a.json("GET", "/containers/json?all=1")
            finally:
                a.close()
            if sum(c["State"] == "running" and c["Id"] in pids for c in body) == count:
                break
            time.sleep(0.002)
        times.append(time.perf_counter() - t)
        ping_times.append(pinged)
        a = eng.api()
        now = {cid: a.json("GET", f"/containers/{cid}/json")["State"]["Pid"] for cid in ids}
        a.close()
        assert now == pids, f"containers were not kept: {pids} -> {now}"
        for p in pids.values():
            os.kill(p, 0)  # still alive
    row(f"daemon SIGKILL + restart until /_ping and {count} running listed", times, "restart", "s")
    report("  of which: until /_ping answers", fmt(ping_times, "s", 1, 3), {})
    print(f"    containers kept across {runs} SIGKILL restarts: yes (same pids, processes alive)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3, help="repetitions of concurrent, logs and restart")
    ap.add_argument("-n", type=int, default=50, help="runs of the API cycle")
    ap.add_argument("--cli-n", type=int, default=30, help="runs of docker run --rm")
    ap.add_argument("--containers", type=int, default=50, help="containers for concurrent/memory")
    ap.add_argument("--restart-containers", type=int, default=5)
    ap.add_argument("--log-mb", type=int, default=106)
    ap.add_argument("--only", nargs="+", choices=ALL, default=list(ALL))
    args = ap.parse_args()
    only = set(args.only)

    print(f"# {command_line()}")
    print("# machine: 2 vCPU, shared with other engineers' test runs: numbers are noisy")
    with engine() as eng:
        if "api" in only:
            bench_api(eng, args.n)
        if "cli" in only:
            bench_cli(eng, args.cli_n)
        if "concurrent" in only or "memory" in only:
            bench_concurrent(eng, args.containers, args.runs, "memory" in only)
        if "logs" in only:
            bench_logs(eng, args.log_mb, args.runs)
        if "restart" in only:
            bench_restart(eng, args.restart_containers, args.runs)

    print("\n| measurement | dockerd | Podman | goal | Dockyard (median) | vs dockerd | vs Podman |")
    print("|---|---|---|---|---|---|---|")
    for name, ours, m, ref, unit in ROWS:
        scale = {"s": 1.0, "ms": 1000.0, "MB": 1.0}[unit]
        cells = [f"{v * scale:g} {unit}" if v is not None else "-" for v in ref]
        rat = [ratio(m, v) if v is not None else "-" for v in ref[:2]]
        print(f"| {name} | {cells[0]} | {cells[1]} | < {cells[2]} | {ours} | {rat[0]} | {rat[1]} |")


if __name__ == "__main__":
    main()
