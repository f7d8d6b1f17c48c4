"""What mounts add to a container start (needs root, /bin/busybox, cc).

    /work/main/.venv/bin/python bench/bench_volumes.py [-n 50] [--runs 3]

Against a private dockyardd: containers of busybox `true` (NetworkMode none) are created
first, half with no mounts and half with 5 (3 named local volumes, made beforehand, and 2
host bind mounts), then each is started with ``POST /containers/{id}/start``, alternating
the two kinds so both see the same machine noise. The number is the time of that request
(the daemon mounts the volumes, the shim clones and attaches the binds after pivot_root);
the result is the difference of the medians. Containers and volumes are removed at the end.
First, the kernel side alone: the native runtime starting `sleep` with 5 bind mounts vs none,
in process (no daemon), which is far less noisy on a busy machine.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import command_line, create_body, engine, fmt, report  # noqa: E402

GOAL_MS = 2.0


async def runtime_only(n: int) -> float:
    """The kernel side alone: NativeRuntime.start of `sleep` with 5 bind mounts vs none, in
    process (no HTTP, no daemon), alternating; returns the median difference in seconds."""
    from dockyard.drivers.runtime import ContainerSpec, Mount
    from dockyard.runtime.native import NativeRuntime
    from dockyard.testing.images import busybox_rootfs

    with tempfile.TemporaryDirectory(prefix="dockyard-bench-") as tmp:
        base = Path(tmp)
        rootfs = busybox_rootfs(base / "rootfs")
        sources = [base / f"src{i}" for i in range(5)]
        for src in sources:
            src.mkdir()
        binds = [Mount(str(src), f"/m{i}", "bind", ["rbind"]) for i, src in enumerate(sources)]
        rt = NativeRuntime({}, base / "root", base / "state")
        plain: list[float] = []
        mounted: list[float] = []
        try:
            for i in range(n + 3):
                for kind, out in ((0, plain), (1, mounted)) if i % 2 else ((1, mounted), (0, plain)):
                    spec = ContainerSpec(id=f"v{i}-{kind}", rootfs=rootfs, args=["sleep", "1000"],
                                         mounts=binds if kind else [])
                    t = time.perf_counter()
                    await rt.start(spec)
                    dt = time.perf_counter() - t
                    await rt.delete(spec.id)
                    if i >= 3:
                        out.append(dt)
        finally:
            for cid in rt.list():
                await rt.delete(cid)
    report("runtime start, no mounts", fmt(plain), {})
    report("runtime start, 5 binds", fmt(mounted), {})
    return statistics.median(mounted) - statistics.median(plain)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=50, help="starts of each kind per run (>= 30)")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    print("kernel side (runtime only):")
    rt_delta = asyncio.run(runtime_only(args.n))
    print(f"  added by 5 binds in the shim: {rt_delta * 1000:.2f} ms (median difference)")
    with engine() as eng:
        api = eng.api()
        binds = [eng.base / "bind1", eng.base / "bind2"]
        for b in binds:
            b.mkdir()
        for i in range(3):
            api.json("POST", "/volumes/create", {"Name": f"bench{i}"})
        mounts = {"Binds": [f"bench{i}:/vol{i}" for i in range(3)] + [f"{b}:/{b.name}" for b in binds]}
        deltas = []
        for run in range(args.runs):
            plain, mounted = [], []
            ids = [(api.json("POST", "/containers/create", create_body("true"))["Id"],
                    api.json("POST", "/containers/create", create_body("true", **mounts))["Id"])
                   for _ in range(args.n + 3)]
            for i, (a, b) in enumerate(ids):
                for cid, out in ((a, plain), (b, mounted)) if i % 2 else ((b, mounted), (a, plain)):
                    t = time.perf_counter()
                    api.json("POST", f"/containers/{cid}/start")
                    dt = time.perf_counter() - t
                    if i >= 3:  # warm-up
                        out.append(dt)
            for a, b in ids:
                for cid in (a, b):
                    api.json("POST", f"/containers/{cid}/wait")
                    api.json("DELETE", f"/containers/{cid}")
            delta = statistics.median(mounted) - statistics.median(plain)
            deltas.append(delta)
            print(f"run {run + 1}:")
            report("start, no mounts", fmt(plain), {})
            report("start, 3 volumes + 2 binds", fmt(mounted), {})
            print(f"  added by 5 mounts: {delta * 1000:.2f} ms (median difference)")
        for i in range(3):
            api.json("DELETE", f"/volumes/bench{i}")
        api.close()
    m = statistics.median(deltas)
    print(f"\nadded median over {args.runs} runs: {m * 1000:.2f} ms (goal < {GOAL_MS} ms: "
          f"{'met' if m * 1000 < GOAL_MS else 'not met'})")
    print(f"of which the shim's 5 binds (runtime only): {rt_delta * 1000:.2f} ms")
    print(f"command: {command_line()}")


if __name__ == "__main__":
    main()
