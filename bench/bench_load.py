"""Benchmark: ``docker load`` / ``docker save`` of the 222 MB / 20k-file image of
bench_images.py, each load on a FRESH ext4 (a loop image on /dev/shm, mkfs'd per run: ext4's
``recently_deleted`` scan makes creating 20k files on a busy, shared filesystem 10x slower, and
that is not the engine's cost), a fresh daemon per run, interleaved with ``tar -x``/``tar -c``
of the same content on the same kind of filesystem; optionally against a baseline tree.
Reports wall medians and the daemon's CPU (utime+stime of all its threads) per load, which is
the steadier figure on a shared machine. Needs root (mount -o loop).

    /work/main/.venv/bin/python bench/bench_load.py [--runs 3] [--baseline /tmp/base_pkgs]

--baseline is a PYTHONPATH under which ``dockyard`` (and the plugins) are an older tree, e.g.
a directory of symlinks: dockyard -> <worktree>/core, dockyard_storage_overlay -> ...
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_images import build_image  # noqa: E402


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class FreshFs:
    """A new ext4 on a loop image in /dev/shm, mounted at ``mnt``."""

    def __init__(self, work: Path) -> None:
        self.img, self.mnt = Path("/dev/shm") / f"bench-load-{os.getpid()}.img", work / "mnt"

    def __enter__(self) -> Path:
        self.mnt.mkdir(exist_ok=True)
        subprocess.run(["truncate", "-s", "3G", str(self.img)], check=True)
        subprocess.run(["mkfs.ext4", "-q", "-F", str(self.img)], check=True)
        subprocess.run(["mount", "-o", "loop", str(self.img), str(self.mnt)], check=True)
        return self.mnt

    def __exit__(self, *exc: object) -> None:
        subprocess.run(["umount", str(self.mnt)], check=False)
        self.img.unlink(missing_ok=True)


def daemon(base: Path, pythonpath: str | None, env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    denv = dict(os.environ)
    if pythonpath:
        denv["PYTHONPATH"] = pythonpath
    url = f"unix://{base}/d.sock"
    with open(base / "daemon.log", "ab") as log:
        p = subprocess.Popen([sys.executable, "-m", "dockyard", "-H", url, "--data-root", str(base / "data"),
                              "--exec-root", str(base / "exec")], stdout=log, stderr=log, env=denv,
                             start_new_session=True, cwd="/")
    for _ in range(600):
        if subprocess.run(["docker", "-H", url, "version"], capture_output=True, env=env).returncode == 0:
            return p, url
        if p.poll() is not None:
            break
        time.sleep(0.05)
    p.kill()
    raise RuntimeError((base / "daemon.log").read_text()[-3000:])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--baseline", help="PYTHONPATH of a baseline tree (adds a 'baseline' column)")
    ap.add_argument("--dir", default="/var/tmp", help="where the image is built (kept between runs: --keep)")
    ap.add_argument("--keep", action="store_true", help="keep the built image for the next run")
    args = ap.parse_args()
    work = Path(args.dir) / "bench-load"
    work.mkdir(parents=True, exist_ok=True)
    if not (work / "image.tar").exists():
        print(f"building the image in {work} ...", file=sys.stderr)
        build_image(work, 200, 20000)
    image, layers = work / "image.tar", [work / "layer1.tar", work / "layer2.tar"]
    env = {**os.environ, "DOCKER_CONFIG": tempfile.mkdtemp(prefix="bench-load-dc-")}
    trees = (["baseline"] if args.baseline else []) + ["now", "tar"]
    res: dict[str, list[float]] = {}
    try:
        for _ in range(args.runs):
            for tree in trees:
                with FreshFs(work) as fs:
                    subprocess.run(["sync"])
                    if tree == "tar":
                        dest = fs / "floor"
                        dest.mkdir()
                        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                        t = time.perf_counter()
                        for layer in layers:
                            subprocess.run(["tar", "-x", "-f", str(layer), "-C", str(dest)], check=True)
                        res.setdefault("tar -x", []).append(time.perf_counter() - t)
                        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                        res.setdefault("tar -x cpu", []).append(r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime)
                        subprocess.run(["sync"])
                        t = time.perf_counter()
                        subprocess.run(["tar", "-c", "-f", str(fs / "o.tar"), "-C", str(dest), "."], check=True)
                        res.setdefault("tar -c", []).append(time.perf_counter() - t)
                        continue
                    p, url = daemon(fs, args.baseline if tree == "baseline" else None, env)
                    try:
                        c0, t = cpu_seconds(p.pid), time.perf_counter()
                        subprocess.run(["docker", "-H", url, "load", "-q", "-i", str(image)], env=env,
                                       check=True, capture_output=True)
                        res.setdefault(f"load {tree}", []).append(time.perf_counter() - t)
                        res.setdefault(f"load {tree} cpu", []).append(cpu_seconds(p.pid) - c0)
                        subprocess.run(["sync"])
                        t = time.perf_counter()
                        subprocess.run(["docker", "-H", url, "save", "-o", str(fs / "s.tar"), "bench:latest"],
                                       env=env, check=True, capture_output=True)
                        res.setdefault(f"save {tree}", []).append(time.perf_counter() - t)
                    finally:
                        p.terminate()
                        p.wait(30)
    finally:
        shutil.rmtree(env["DOCKER_CONFIG"], ignore_errors=True)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in res.items()}
    for k, v in res.items():
        print(f"  {k:18s} median {med[k]:6.2f}s   runs: {', '.join(f'{x:.2f}' for x in v)}")
    for tree in trees[:-1]:
        print(f"  {tree}: load / tar -x = {med[f'load {tree}'] / med['tar -x']:.2f}x (goal <= 1.3x), "
              f"save / tar -c = {med[f'save {tree}'] / med['tar -c']:.2f}x (goal <= 1.2x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
