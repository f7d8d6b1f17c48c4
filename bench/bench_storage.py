"""Storage driver benchmark (needs root): overlay mount+unmount latency and layer unpacking
throughput against ``tar -x`` of the same tar (the disk floor).

    /work/main/.venv/bin/python bench/bench_storage.py [--runs 200] [--dir /var/tmp]

Everything is created under a temporary directory that is removed at the end.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

from dockyard_storage_overlay import OverlayDriver, VfsDriver


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f} ms"


def bench_mount(base: Path, layers: int, runs: int, api: str) -> tuple[float, float]:
    drv = OverlayDriver({"mount_api": api}, base / f"mnt-{layers}-{api}", base / "state")
    parent = None
    for i in range(layers):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tf:
            info = tarfile.TarInfo(f"f{i}")
            tf.addfile(info, io.BytesIO(b""))
        buf.seek(0)
        layer = f"{layers:02d}{i:062x}"
        drv.create_layer(layer, parent, buf)
        parent = layer
    cid = "c" * 64
    drv.create_rw(cid, parent)
    mounts, unmounts = [], []
    try:
        for _ in range(runs):
            t0 = time.perf_counter()
            drv.mount(cid)
            t1 = time.perf_counter()
            drv.unmount(cid)
            t2 = time.perf_counter()
            mounts.append(t1 - t0)
            unmounts.append(t2 - t1)
    finally:
        drv.remove_rw(cid)
    return statistics.median(mounts), statistics.median(unmounts)


def make_big_tar(path: Path) -> None:
    with tarfile.open(path, "w") as tf:
        data = path.parent / "big.bin"
        with open(data, "wb") as f:
            for _ in range(200):
                f.write(os.urandom(1 << 20))
        tf.add(data, "big.bin")
        data.unlink()


def make_small_tar(path: Path) -> None:
    payload = os.urandom(1024)
    with tarfile.open(path, "w") as tf:
        for d in range(100):
            info = tarfile.TarInfo(f"d{d:03d}")
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tf.addfile(info)
            for i in range(200):
                info = tarfile.TarInfo(f"d{d:03d}/f{i:03d}")
                info.size, info.mode = len(payload), 0o644
                tf.addfile(info, io.BytesIO(payload))


def timed(fn) -> float:
    subprocess.run(["sync"], check=True)
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench_unpack(base: Path, tar: Path, reps: int) -> dict[str, float]:
    results: dict[str, list[float]] = {"tar -x": [], "overlay": [], "vfs": []}
    for rep in range(reps):
        dest = base / f"tarx-{rep}"
        dest.mkdir()
        results["tar -x"].append(timed(lambda: subprocess.run(
            ["tar", "-x", "-f", str(tar), "-C", str(dest)], check=True)))
        shutil.rmtree(dest)
        for name, cls in (("overlay", OverlayDriver), ("vfs", VfsDriver)):
            drv = cls({}, base / f"{name}-{rep}", base / "state")
            with open(tar, "rb") as f:
                results[name].append(timed(lambda: drv.create_layer("layer", None, f)))
            drv.remove_layer("layer")
            shutil.rmtree(base / f"{name}-{rep}")
    return {k: statistics.median(v) for k, v in results.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--dir", default=None, help="where to create temporary files")
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="dockyard-bench-storage-", dir=args.dir))
    try:
        print(f"overlay mount+unmount, median of {args.runs} (host floor: 0.24 + 0.49 ms)")
        for api in ("new", "legacy"):
            for layers in (1, 20):
                m, u = bench_mount(base, layers, args.runs, api)
                print(f"  {api:6} {layers:2} layer(s): mount {ms(m)}  unmount {ms(u)}  total {ms(m + u)}")
        for label, maker in (("200 MB incompressible file", make_big_tar),
                             ("20,000 x 1 KB files", make_small_tar)):
            tar = base / "layer.tar"
            maker(tar)
            res = bench_unpack(base, tar, args.reps)
            floor = res["tar -x"]
            print(f"create_layer, {label} (median of {args.reps}, tar {tar.stat().st_size >> 20} MiB)")
            for name, t in res.items():
                print(f"  {name:8} {t:7.3f} s   x{t / floor:5.2f} of tar -x")
            tar.unlink()
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
