"""Benchmark: ``docker load`` / ``docker save`` of a ~220 MB image against dockyardd.

The image has two layers: one 200 MB incompressible file, and 20,000 files of 1 KiB. The
disk floor is ``tar -x`` of the same two layer tars (what any engine must at least do to
unpack them), and ``tar -c`` of the unpacked tree for save. Medians over ``--runs`` runs.

    /work/main/.venv/bin/python bench/bench_images.py [--runs 3] [-s overlay|vfs|fake] [--keep]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from dockyard.testing.daemon import DaemonProcess
from dockyard.testing.images import EPOCH, image_config, sha256_file


def _info(name: str, kind: bytes, mode: int, size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size, info.mtime = kind, mode, size, EPOCH
    return info


def build_image(work: Path, big_mb: int, small_files: int) -> tuple[Path, list[Path]]:
    l1, l2 = work / "layer1.tar", work / "layer2.tar"
    with tarfile.open(l1, "w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(_info("data", tarfile.DIRTYPE, 0o755))
        size = big_mb * 1024 * 1024
        with open(work / "big.bin", "wb") as f:
            for _ in range(big_mb):
                f.write(os.urandom(1024 * 1024))
        with open(work / "big.bin", "rb") as f:
            tar.addfile(_info("data/big.bin", tarfile.REGTYPE, 0o644, size), f)
        (work / "big.bin").unlink()
    with tarfile.open(l2, "w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(_info("small", tarfile.DIRTYPE, 0o755))
        for d in range(small_files // 1000):
            tar.addfile(_info(f"small/{d:02d}", tarfile.DIRTYPE, 0o755))
            for i in range(1000):
                data = os.urandom(1024)
                tar.addfile(_info(f"small/{d:02d}/f{i:04d}", tarfile.REGTYPE, 0o644, len(data)), io.BytesIO(data))
    diffs = [sha256_file(l1), sha256_file(l2)]
    config = image_config([], cmd=["sh"])
    config["rootfs"]["diff_ids"] = diffs
    config["history"] = [{"created": config["created"], "created_by": f"ADD layer{i}"} for i in (1, 2)]
    config_bytes = json.dumps(config, separators=(",", ":")).encode()
    image = work / "image.tar"
    with tarfile.open(image, "w", format=tarfile.PAX_FORMAT) as tar:
        for layer, diff in zip((l1, l2), diffs):
            tar.add(layer, f"blobs/sha256/{diff[7:]}")
        cname = f"blobs/sha256/{sha256_bytes(config_bytes)[7:]}"
        tar.addfile(_info(cname, tarfile.REGTYPE, 0o644, len(config_bytes)), io.BytesIO(config_bytes))
        manifest = json.dumps([{"Config": cname, "RepoTags": ["bench:latest"],
                                "Layers": [f"blobs/sha256/{d[7:]}" for d in diffs]}]).encode()
        tar.addfile(_info("manifest.json", tarfile.REGTYPE, 0o644, len(manifest)), io.BytesIO(manifest))
    return image, [l1, l2]


def sha256_bytes(data: bytes) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(data).hexdigest()


def sync_disks() -> None:
    subprocess.run(["sync"], check=False)


def timed(cmd: list[str], **kw) -> float:
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, **kw)
    dt = time.perf_counter() - t
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {r.stderr.decode()[-2000:]}")
    return dt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("-s", "--storage-driver", help="daemon storage driver (default: the daemon's choice)")
    parser.add_argument("--big-mb", type=int, default=200)
    parser.add_argument("--small-files", type=int, default=20000)
    parser.add_argument("--dir", help="work directory (default: a temp dir on /var/tmp)")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bench-images-", dir=args.dir or "/var/tmp"))
    try:
        print(f"building the image in {base} ...", file=sys.stderr)
        image, layers = build_image(base, args.big_mb, args.small_files)
        size_mb = image.stat().st_size / 1e6
        daemon = DaemonProcess(base / "daemon", *(["-s", args.storage_driver] if args.storage_driver else []))
        daemon.start()
        results: dict[str, list[float]] = {"load": [], "save": [], "tar -x": [], "tar -c": []}
        try:
            for run in range(args.runs):
                sync_disks()
                results["load"].append(timed(["docker", "-H", daemon.url, "load", "-q", "-i", str(image)],
                                             env={**os.environ, "DOCKER_CONFIG": str(base / "dc")}))
                out = base / "saved.tar"
                sync_disks()
                results["save"].append(timed(["docker", "-H", daemon.url, "save", "-o", str(out), "bench:latest"],
                                             env={**os.environ, "DOCKER_CONFIG": str(base / "dc")}))
                out.unlink()
                timed(["docker", "-H", daemon.url, "rmi", "bench:latest"],
                      env={**os.environ, "DOCKER_CONFIG": str(base / "dc")})
                dest = base / "floor"
                dest.mkdir()
                sync_disks()
                t = time.perf_counter()
                for layer in layers:
                    subprocess.run(["tar", "-x", "-f", str(layer), "-C", str(dest)], check=True)
                subprocess.run(["sync", "-f", str(dest)], check=True)
                results["tar -x"].append(time.perf_counter() - t)
                sync_disks()
                results["tar -c"].append(timed(["tar", "-c", "-f", str(base / "floor.tar"), "-C", str(dest), "."]))
                (base / "floor.tar").unlink()
                shutil.rmtree(dest)
            driver = json.loads(subprocess.run(["docker", "-H", daemon.url, "info", "--format", "{{json .Driver}}"],
                                               capture_output=True, env={**os.environ, "DOCKER_CONFIG": str(base / "dc")}
                                               ).stdout or b'"?"')
        finally:
            daemon.stop()
        med = {k: statistics.median(v) for k, v in results.items()}
        print(f"image: {size_mb:.0f} MB ({args.big_mb} MB incompressible + {args.small_files} x 1 KiB files), "
              f"storage driver: {driver}, runs: {args.runs}")
        for k, v in results.items():
            print(f"  {k:8s} median {med[k]:6.2f}s   runs: {', '.join(f'{x:.2f}' for x in v)}")
        print(f"  load / tar -x  = {med['load'] / med['tar -x']:.2f}x   "
              f"({size_mb / med['load']:.0f} MB/s)")
        print(f"  save / tar -c  = {med['save'] / med['tar -c']:.2f}x   "
              f"({size_mb / med['save']:.0f} MB/s)")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
