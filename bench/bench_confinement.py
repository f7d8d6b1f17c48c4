"""What confining exec/healthcheck helpers and the container costs: `docker exec C true` and
`docker run --rm busybox true`, this tree next to an older one, interleaved.

    /work/main/.venv/bin/python bench/bench_confinement.py [-n 40] --baseline-pythonpath DIR

DIR holds the older ``dockyard`` package and its plugins' packages (``dockyard_cgroups``,
``dockyard_storage_overlay``, ``dockyard_net_bridge``, ``dockyard_auth_tls``), e.g. symlinks into
a ``git worktree`` of the older commit. Both daemons run without the plugins the older tree
lacks (``DOCKYARD_DISABLE_PLUGINS``), so the figures compare the runtime, not the metrics hook.
Containers use ``--network none``: the figures are the runtime's, not the bridge's.
Prints the median (p10-p90) of each, and the ratio now/baseline.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import engines  # noqa: E402


def docker(eng, *args: str) -> float:
    env = {**os.environ, "DOCKER_CONFIG": str(eng.base / "docker-config")}
    env.pop("PYTHONPATH", None)
    t = time.perf_counter()
    r = subprocess.run(["docker", "-H", f"unix://{eng.socket}", *args], env=env, capture_output=True, timeout=120)
    dt = time.perf_counter() - t
    if r.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)} failed: {r.stderr.decode()}")
    return dt


def summary(xs: list[float]) -> str:
    qs = statistics.quantiles(xs, n=10)
    return f"{statistics.median(xs) * 1000:.1f} ms (p10 {qs[0] * 1000:.1f}, p90 {qs[-1] * 1000:.1f}, n={len(xs)})"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=40)
    ap.add_argument("--baseline-pythonpath", required=True)
    args = ap.parse_args()
    os.environ["DOCKYARD_DISABLE_PLUGINS"] = "metrics,oci"
    kinds = {"exec": ("exec", "target", "true"), "run": ("run", "--rm", "--network", "none", "busybox", "true")}
    with contextlib.ExitStack() as stack:
        engs = engines(stack, args.baseline_pythonpath)
        for eng in engs.values():
            docker(eng, "run", "-d", "--name", "target", "--network", "none", "busybox", "sleep", "3600")
            for cmd in kinds.values():
                docker(eng, *cmd)  # warm-up
        samples = {(tag, k): [] for tag in engs for k in kinds}
        for _ in range(args.n):
            for k, cmd in kinds.items():
                for tag, eng in engs.items():
                    samples[(tag, k)].append(docker(eng, *cmd))
        for k in kinds:
            base, now = samples[("baseline", k)], samples[("now", k)]
            print(f"{' '.join(kinds[k]):45s} baseline {summary(base)}   now {summary(now)}   "
                  f"ratio now/baseline {statistics.median(now) / statistics.median(base):.2f}")
    print(f"command: {' '.join(sys.argv)}")


if __name__ == "__main__":
    main()
