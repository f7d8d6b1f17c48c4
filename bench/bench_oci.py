"""Container lifecycle under the native runtime vs runc (the oci runtime plugin), same daemon,
same script, interleaved (needs root, /bin/busybox, cc, runc and dockyard-oci-runtime).

    /work/main/.venv/bin/python bench/bench_oci.py [-n 30] [--runs 3] [--containers 50]
        [--runtimes native runc] [--only api exec concurrent]

One private dockyardd (native default runtime; the oci plugin serves ``runc``). Each
measurement is made for every runtime in turn, round after round (so load from other work on
the machine falls on both alike), by naming the runtime in ``HostConfig.Runtime``:

* api:        POST create + start + wait + DELETE of busybox `true` (NetworkMode none) over one
              keep-alive connection; median of n runs per runtime.
* exec:       in a running busybox `sleep` container of that runtime: POST /containers/C/exec +
              POST /exec/ID/start (hijacked, read to the end) + GET /exec/ID/json; median of n.
* concurrent: create --containers `sleep 60` containers, start them all at once (one thread
              and connection each) until /containers/json lists all running; median of --runs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_exec import hijacked_start  # noqa: E402
from common import Api, Engine, command_line, create_body, engine, fmt  # noqa: E402

ALL = ("api", "exec", "concurrent")


def body(runtime: str, *cmd: str) -> dict:
    b = create_body(*cmd)
    if runtime != "native":
        b["HostConfig"]["Runtime"] = runtime
    return b


def api_cycle(api: Api, runtime: str) -> float:
    t = time.perf_counter()
    cid = api.json("POST", "/containers/create", body(runtime, "true"))["Id"]
    api.json("POST", f"/containers/{cid}/start")
    res = api.json("POST", f"/containers/{cid}/wait")
    api.json("DELETE", f"/containers/{cid}")
    dt = time.perf_counter() - t
    assert res["StatusCode"] == 0, res
    return dt


def exec_cycle(api: Api, sock: str, cid: str) -> float:
    t = time.perf_counter()
    eid = api.json("POST", f"/containers/{cid}/exec",
                   {"Cmd": ["true"], "AttachStdout": True, "AttachStderr": True})["Id"]
    hijacked_start(sock, eid)
    code = api.json("GET", f"/exec/{eid}/json")["ExitCode"]
    dt = time.perf_counter() - t
    assert code == 0, code
    return dt


def concurrent(eng: Engine, api: Api, runtime: str, count: int) -> float:
    ids = [api.json("POST", "/containers/create", body(runtime, "sleep", "60"))["Id"] for _ in range(count)]
    conns = [eng.api() for _ in range(count)]
    t0: list[float] = []
    barrier = threading.Barrier(count, action=lambda: t0.append(time.perf_counter()))

    def start(i: int) -> None:
        barrier.wait()
        conns[i].json("POST", f"/containers/{ids[i]}/start")

    try:
        with ThreadPoolExecutor(count) as pool:
            for f in [pool.submit(start, i) for i in range(count)]:
                f.result()
            while sum(c["State"] == "running" for c in api.json("GET", "/containers/json?all=1")) < count:
                time.sleep(0.002)
            dt = time.perf_counter() - t0[0]
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda cid: remove(eng, cid), ids))
    finally:
        for c in conns:
            c.close()
    return dt


def remove(eng: Engine, cid: str) -> None:
    a = eng.api()
    try:
        a.json("DELETE", f"/containers/{cid}?force=1")
    finally:
        a.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=30, help="runs of the API and exec cycles per runtime")
    ap.add_argument("--runs", type=int, default=3, help="rounds of the concurrent start")
    ap.add_argument("--containers", type=int, default=50)
    ap.add_argument("--runtimes", nargs="+", default=["native", "runc"])
    ap.add_argument("--only", nargs="+", choices=ALL, default=list(ALL))
    args = ap.parse_args()
    rts: list[str] = args.runtimes
    res: dict[tuple[str, str], list[float]] = {}
    print(f"# {command_line()}")
    print("# machine: 2 vCPU, shared with other engineers' test runs: numbers are noisy")
    with engine() as eng:
        api = eng.api()
        info = api.json("GET", "/info")
        missing = [r for r in rts if r not in info["Runtimes"]]
        if missing:
            sys.exit(f"runtimes not served by this daemon: {missing} (has {sorted(info['Runtimes'])})")
        if "api" in args.only:
            for rt in rts:  # warm-up
                for _ in range(3):
                    api_cycle(api, rt)
            for _ in range(args.n):
                for rt in rts:
                    res.setdefault(("api", rt), []).append(api_cycle(api, rt))
        if "exec" in args.only:
            sleepers = {}
            for rt in rts:
                cid = api.json("POST", "/containers/create", body(rt, "sleep", "1000"))["Id"]
                api.json("POST", f"/containers/{cid}/start")
                sleepers[rt] = cid
                for _ in range(3):
                    exec_cycle(api, str(eng.socket), cid)
            for _ in range(args.n):
                for rt in rts:
                    res.setdefault(("exec", rt), []).append(exec_cycle(api, str(eng.socket), sleepers[rt]))
            for cid in sleepers.values():
                api.json("DELETE", f"/containers/{cid}?force=1")
        if "concurrent" in args.only:
            for _ in range(args.runs):
                for rt in rts:
                    time.sleep(0.5)
                    res.setdefault(("concurrent", rt), []).append(concurrent(eng, api, rt, args.containers))
        api.close()

    names = {"api": "API create+start+wait+delete `true`", "exec": "API exec `true` (create+start+inspect)",
             "concurrent": f"start {args.containers} `sleep` containers concurrently until all running"}
    for (what, rt), xs in res.items():
        unit, scale, digits = ("s", 1.0, 2) if what == "concurrent" else ("ms", 1000.0, 1)
        print(f"{names[what]} [{rt}]: {fmt(xs, unit, scale, digits)}")
    print("\n| measurement (median) | " + " | ".join(rts) + (" | ratio |" if len(rts) == 2 else " |"))
    print("|---|" + "---|" * (len(rts) + (1 if len(rts) == 2 else 0)))
    for what in args.only:
        ms = [statistics.median(res[(what, rt)]) for rt in rts]
        unit, scale, digits = ("s", 1.0, 2) if what == "concurrent" else ("ms", 1000.0, 1)
        cells = [f"{m * scale:.{digits}f} {unit}" for m in ms]
        if len(ms) == 2:
            cells.append(f"{ms[1] / ms[0]:.2f}x")
        print(f"| {names[what]} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
