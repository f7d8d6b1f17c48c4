"""What the device rules, the /sys/fs/cgroup view and oom_score_adj cost a container start.

    /work/main/.venv/bin/python bench/bench_devices.py [-n 30] [--baseline-pythonpath DIR]

Wall time of ``docker run --rm busybox true`` (docker CLI 28 against a private dockyardd) and
of the API cycle create+start+wait+delete, in variants: the default (devices cgroup deny list,
default nodes made with mknod, /sys/fs/cgroup binds for ``--cgroupns host``), ``--cgroupns
private`` (cgroup namespace + one cgroup mount per hierarchy) and ``--privileged`` (every host
device node in /dev). ``--baseline-pythonpath DIR`` starts a second daemon with
``PYTHONPATH=DIR`` (a copy of the older ``dockyard`` and ``dockyard_cgroups`` packages) whose
default runs are interleaved with ours, so both see the same load. dockerd is not installed
here: no side-by-side run.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import api_cycle, command_line, engines, fmt, report  # noqa: E402

VARIANTS = {"default": [], "--cgroupns private": ["--cgroupns", "private"], "--privileged": ["--privileged"]}
API_HOST_CONFIG = {"default": {}, "--cgroupns private": {"CgroupnsMode": "private"}, "--privileged": {"Privileged": True}}


def cli_run(eng, flags: list[str]) -> float:
    env = {**os.environ, "DOCKER_CONFIG": str(eng.base / "docker-config")}
    env.pop("PYTHONPATH", None)
    t = time.perf_counter()
    r = subprocess.run(["docker", "-H", f"unix://{eng.socket}", "run", "--rm", *flags, "busybox", "true"],
                       env=env, capture_output=True, timeout=120)
    dt = time.perf_counter() - t
    if r.returncode != 0:
        raise RuntimeError(f"docker run failed: {r.stderr.decode()}")
    return dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=30, help="samples of each kind (>= 30)")
    ap.add_argument("--baseline-pythonpath", default="", help="a second daemon on older code, interleaved")
    args = ap.parse_args()
    with contextlib.ExitStack() as stack:
        engs = engines(stack, args.baseline_pythonpath)
        runs = [("now", v) for v in VARIANTS]
        if "baseline" in engs:
            runs.insert(0, ("baseline", "default"))
        apis = {tag: eng.api() for tag, eng in engs.items()}
        for tag, v in runs:  # warm-up
            cli_run(engs[tag], VARIANTS[v])
            api_cycle(apis[tag], API_HOST_CONFIG[v])
        cli: dict = {r: [] for r in runs}
        cyc: dict = {r: [] for r in runs}
        for i in range(args.n):
            for tag, v in runs[i % len(runs):] + runs[:i % len(runs)]:  # rotating order
                cli[(tag, v)].append(cli_run(engs[tag], VARIANTS[v]))
                cyc[(tag, v)].append(api_cycle(apis[tag], API_HOST_CONFIG[v]))
        for a in apis.values():
            a.close()
    print("docker run --rm busybox true (CLI wall):")
    for tag, v in runs:
        report(f"{tag} {v}", fmt(cli[(tag, v)]), {})
    print("API create+start+wait+delete of `true`:")
    for tag, v in runs:
        report(f"{tag} {v}", fmt(cyc[(tag, v)]), {})
    print(f"\n{command_line()}")


if __name__ == "__main__":
    main()
