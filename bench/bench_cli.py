"""Benchmark of the ``dockyard`` CLI's start-up (needs root, /bin/busybox and the `docker` CLI).

Against a private dockyardd holding a few created containers, wall time (median of n runs,
after 2 warm-up runs) of:

* ``dockyard version``, ``dockyard ps``, ``dockyard ps -a`` (rows to render), ``dockyard --help``
  (no request at all: start-up only);
* ``docker version`` and ``docker ps`` against the same daemon, for reference;
* ``python -c pass`` and ``python -c "import click, http.client"``: the floor under any
  ``dockyard`` command (the interpreter, the venv's site, and the two imports every request needs);
* with ``--baseline DIR`` (a directory holding an older ``dockyard_cli`` package, e.g. a copy of
  ``cli/`` taken before a change), the same dockyard commands with that package first on
  ``PYTHONPATH``, interleaved run by run with the current one so that both see the same load.

Every run is ``python -m dockyard_cli`` with the venv's interpreter and a warm bytecode cache
(``PYTHONPYCACHEPREFIX`` in the temp dir; this environment sets ``PYTHONDONTWRITEBYTECODE``,
so without it every run would recompile the CLI, which an installed CLI never does).

    .venv/bin/python bench/bench_cli.py [-n 30] [--containers 5] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import command_line, engine, fmt, ratio, report  # noqa: E402

COMMANDS = (("version",), ("ps",), ("ps", "-a"), ("--help",), ("run", "--help"))
DOCKER = "/usr/local/bin/docker"


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_once(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one run; CPU (user + system) is less disturbed by a loaded machine."""
    cpu0, t0 = children_cpu(), time.perf_counter()
    r = subprocess.run(cmd, env=env, capture_output=True, timeout=60)
    elapsed, cpu = time.perf_counter() - t0, children_cpu() - cpu0
    if r.returncode != 0:
        raise RuntimeError(f"{cmd}: exit {r.returncode}: {r.stderr.decode()[:300]}")
    return elapsed, cpu


def measure(variants: dict[str, tuple[list[str], dict[str, str]]], n: int) -> dict[str, list[float]]:
    """Interleave the variants: run i of each, then run i+1 of each; drop 2 warm-up rounds.
    Wall times under each name, CPU times under ``<name> cpu``."""
    times: dict[str, list[float]] = {}
    for i in range(n + 2):
        for name, (cmd, env) in variants.items():
            wall, cpu = run_once(cmd, env)
            if i >= 2:
                times.setdefault(name, []).append(wall)
                times.setdefault(f"{name} cpu", []).append(cpu)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=30, help="measured runs per command (default 30)")
    ap.add_argument("--containers", type=int, default=5, help="created (not started) containers for ps -a")
    ap.add_argument("--baseline", type=Path, help="directory holding an older dockyard_cli package")
    args = ap.parse_args()

    with engine() as eng:
        api = eng.api()
        for _ in range(args.containers):
            api.json("POST", "/containers/create", {"Image": "busybox", "Cmd": ["true"],
                                                     "HostConfig": {"NetworkMode": "none"}})
        api.close()
        host = f"unix://{eng.socket}"
        base_env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "", "DOCKYARD_HOST": host}
        base_env.pop("PYTHONPATH", None)
        current = {**base_env, "PYTHONPYCACHEPREFIX": str(eng.base / "pycache-current")}
        older = None
        if args.baseline:
            older = {**base_env, "PYTHONPYCACHEPREFIX": str(eng.base / "pycache-baseline"),
                     "PYTHONPATH": str(args.baseline.resolve())}
        print(f"dockyard CLI start-up, n={args.n}, {args.containers} containers (ps -a)")
        print(f"  {command_line()}")
        floor = {"python -c pass": ([sys.executable, "-c", "pass"], current),
                 "python -c 'import click, http.client'": ([sys.executable, "-c", "import click, http.client"], current)}
        times = measure(floor, args.n)
        for name in floor:
            report(name, fmt(times[name]), {})
            report(f"{name} (CPU)", fmt(times[f"{name} cpu"]), {})
        docker = shutil.which(DOCKER)
        for words in COMMANDS:
            variants = {"current": ([sys.executable, "-m", "dockyard_cli", *words], current)}
            if older is not None:
                variants["baseline"] = ([sys.executable, "-m", "dockyard_cli", *words], older)
            docker_words = ("--help",) if words == ("--help",) else words
            if docker:
                variants["docker"] = ([docker, "-H", host, *docker_words], base_env)
            times = measure(variants, args.n)
            refs = {}
            if "baseline" in times:
                refs["baseline " + fmt(times["baseline"])] = ratio(
                    statistics.median(times["current"]), statistics.median(times["baseline"]))
            if "docker" in times:
                refs[f"docker {' '.join(docker_words)} " + fmt(times["docker"])] = ratio(
                    statistics.median(times["current"]), statistics.median(times["docker"]))
            report(f"dockyard {' '.join(words)}", fmt(times["current"]), refs)
            cpu = {"baseline": fmt(times["baseline cpu"])} if "baseline" in times else {}
            if "docker" in times:
                cpu["docker"] = fmt(times["docker cpu"])
            report(f"dockyard {' '.join(words)} (CPU)", fmt(times["current cpu"]), cpu)


if __name__ == "__main__":
    main()
