"""Benchmark of the native runtime (needs root and /bin/busybox).

    /work/main/.venv/bin/python bench/bench_runtime.py [-n 50]

Prints: median start latency (start() call -> container exec'd), median start+exit+delete
of `true`, the monitor's PSS while a `sleep` container runs, and the time to capture 106 MB
of stdout (start -> exit recorded) plus the time to read it back.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from dockyard.drivers.runtime import ContainerSpec
from dockyard.runtime import state as st
from dockyard.runtime.native import NativeRuntime
from dockyard.testing.images import busybox_rootfs as make_rootfs


def pss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return -1


async def _start(rt, s) -> str:
    await rt.start(s)
    return s.id


async def main(n: int) -> None:
    with tempfile.TemporaryDirectory(prefix="dockyard-bench-") as tmp:
        base = Path(tmp)
        rootfs = make_rootfs(base / "rootfs")
        rt = NativeRuntime({}, base / "root", base / "state")
        try:
            await bench(rt, rootfs, n)
        finally:  # leave nothing running, even on error
            for cid in rt.list():
                await rt.delete(cid)


async def bench(rt, rootfs, n: int) -> None:
    def spec(i, *args, **kw):
        return ContainerSpec(id=f"b{i}", rootfs=rootfs, args=list(args), **kw)

    for i in range(3):  # warm-up
        await rt.start(spec(i, "true"))
        await rt.wait(f"b{i}")
        await rt.delete(f"b{i}")

    starts, cycles, starts_nonet = [], [], []
    for i in range(n):
        s = spec(i, "sleep", "1000")
        t = time.perf_counter()
        await rt.start(s)
        starts.append(time.perf_counter() - t)
        await rt.delete(s.id)
    for i in range(n):
        s = spec(i, "sleep", "1000", namespaces={"net": "host", "ipc": None, "uts": None, "pid": None})
        t = time.perf_counter()
        await rt.start(s)
        starts_nonet.append(time.perf_counter() - t)
        await rt.delete(s.id)
    for i in range(n):
        s = spec(i, "true")
        t = time.perf_counter()
        await rt.start(s)
        await rt.wait(s.id)
        await rt.delete(s.id)
        cycles.append(time.perf_counter() - t)
    ms = lambda xs: f"{statistics.median(xs) * 1000:.2f} ms (p10 {sorted(xs)[len(xs) // 10] * 1000:.2f}, p90 {sorted(xs)[len(xs) * 9 // 10] * 1000:.2f})"
    print(f"start latency (shim spawn -> exec'd), n={n}: {ms(starts)}")
    print(f"start latency without a new netns, n={n}: {ms(starts_nonet)}")
    print(f"start + exit + delete of `true`, n={n}: {ms(cycles)}")

    s = spec("pss", "sleep", "1000")
    await rt.start(s)
    cpid, mpid = st.read_pids(rt.state_root / s.id)
    await asyncio.sleep(0.2)
    rss = next(int(l.split()[1]) for l in Path(f"/proc/{mpid}/status").read_text().splitlines() if l.startswith("VmRSS:"))
    print(f"monitor (shim) of a running sleep container: PSS {pss_kb(mpid)} kB, RSS {rss} kB")
    await rt.delete(s.id)
    ids = []
    for i in range(10):
        ids.append((await _start(rt, spec(f"pss{i}", "sleep", "1000"))))
    await asyncio.sleep(0.2)
    per = [pss_kb(st.read_pids(rt.state_root / cid)[1]) for cid in ids]
    print(f"PSS per monitor with 10 sleep containers running: median {statistics.median(per):.0f} kB "
          "(text pages of the static shim are shared)")
    for cid in ids:
        await rt.delete(cid)

    s = spec("big", "dd", "if=/dev/zero", "bs=1M", "count=106", log_max_size=0)
    t = time.perf_counter()
    await rt.start(s)
    await rt.wait(s.id)
    dt = time.perf_counter() - t
    t = time.perf_counter()
    total = sum(len(r.data) for r in rt.logs(s.id).records() if r.stream == 1)
    rd = time.perf_counter() - t
    print(f"106 MB stdout: captured {total} bytes in {dt * 1000:.0f} ms (start -> exit file); "
          f"read back in {rd * 1000:.0f} ms")
    await rt.delete(s.id)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=50)
    asyncio.run(main(ap.parse_args().n))
