"""Request overhead and idle memory, this tree next to an older one, interleaved (needs root, cc).

    /work/main/.venv/bin/python bench/bench_request.py [--runs 5] [--seconds 3] [--connections 32]
        [--baseline-pythonpath DIR] [--plugins on,off] [--containers 50] [--list-requests 500]

For each daemon (``now``: this tree; ``baseline``: the ``dockyard`` package found in DIR, e.g. a
directory holding a ``dockyard`` symlink to an older worktree's ``core/``), with the installed
hook plugins (``on``: auth_tls, metrics) and without them (``off``: DOCKYARD_DISABLE_PLUGINS):

1. idle PSS (``/proc/PID/smaps_rollup``) 2 s after start and after 1,000 sequential pings (of a
   restarted daemon, running from the bytecode its first start wrote, as an installed one does;
   ``--cold``: the first start);
2. the daemon's CPU (utime+stime) per ``GET /_ping`` with ``--connections`` keep-alive
   connections driven by ``bench/unixload.c`` for ``--seconds``, and per ``GET /v1.44/_ping``;
   runs interleaved across the daemons so that load from other processes hits all alike;
3. with ``--containers N``: CPU per ``GET /containers/json?all=1`` with N created containers.

Medians with p10/p90. Timings on a shared machine are noisy: compare within one run.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Engine, command_line, cpu_seconds, create_body, engine, fmt, pss_kb  # noqa: E402

HOOK_PLUGINS = "auth_tls,metrics"


def build_loadgen(tmp: Path) -> Path:
    exe = tmp / "unixload"
    subprocess.run(["cc", "-O2", "-o", str(exe), str(Path(__file__).with_name("unixload.c"))], check=True)
    return exe


def load(exe: Path, eng: Engine, conns: int, seconds: float, path: str) -> float:
    """Daemon CPU seconds per request over one load run."""
    c0 = cpu_seconds(eng.pid)
    out = subprocess.run([str(exe), str(eng.socket), path, str(conns), str(seconds)],
                         capture_output=True, text=True, timeout=seconds + 30)
    cpu = cpu_seconds(eng.pid) - c0
    if out.returncode != 0:
        raise RuntimeError(f"unixload failed: {out.stderr}")
    r = {k: float(v) for k, v in (kv.split("=") for kv in out.stdout.split())}
    if r["errors"]:
        print(f"  warning: {r['errors']:.0f} connection errors", file=sys.stderr)
    return cpu / max(r["responses"], 1)


@contextlib.contextmanager
def daemon(pythonpath: str | None, plugins: bool, containers: int, cold: bool = False):
    saved = dict(os.environ)
    if pythonpath:
        os.environ["PYTHONPATH"] = pythonpath
    if not plugins:
        os.environ["DOCKYARD_DISABLE_PLUGINS"] = HOOK_PLUGINS
    try:
        ctx = engine(load_busybox=containers > 0)
        eng = ctx.__enter__()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    try:
        if not cold:
            # The first start compiled every module from source (its own empty bytecode cache):
            # the compiler's garbage is ~5 MB of idle PSS that an installed daemon, which runs
            # from bytecode, never has. Measure a restart, as installed.
            eng.daemon.stop()
            eng.daemon.start()
        yield eng
    finally:
        ctx.__exit__(None, None, None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=3)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--baseline-pythonpath", default="")
    ap.add_argument("--plugins", default="on,off", help="on, off or on,off")
    ap.add_argument("--containers", type=int, default=0)
    ap.add_argument("--list-requests", type=int, default=500)
    ap.add_argument("--cold", action="store_true",
                    help="measure each daemon's first start (modules compiled from source) instead of a restart")
    args = ap.parse_args()
    print(f"# {command_line()}")

    names = (["baseline"] if args.baseline_pythonpath else []) + ["now"]
    modes = [m.strip() for m in args.plugins.split(",")]
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        exe = build_loadgen(Path(tmp))
        engines: dict[str, Engine] = {}
        pss: dict[str, list[float]] = {}
        for mode in modes:
            for name in names:
                key = f"{name} plugins={mode}"
                eng = stack.enter_context(daemon(args.baseline_pythonpath if name == "baseline" else None,
                                                 mode == "on", args.containers, args.cold))
                engines[key] = eng
        time.sleep(2.0)
        for key, eng in engines.items():
            pss[key] = [pss_kb(eng.pid) / 1024]
            api = eng.api()
            for _ in range(1000):
                assert api.call("GET", "/_ping")[0] == 200
            api.close()
            pss[key].append(pss_kb(eng.pid) / 1024)
        cpu: dict[str, dict[str, list[float]]] = {k: {"/_ping": [], "/v1.44/_ping": []} for k in engines}
        for key, eng in engines.items():  # warm-up
            load(exe, eng, args.connections, 0.5, "/_ping")
        for _ in range(args.runs):
            for path in ("/_ping", "/v1.44/_ping"):
                for key, eng in engines.items():
                    cpu[key][path].append(load(exe, eng, args.connections, args.seconds, path))
        lists: dict[str, list[float]] = {}
        if args.containers:
            for key, eng in engines.items():
                api = eng.api()
                for _ in range(args.containers):
                    api.json("POST", "/containers/create", create_body("sleep", "1000"))
                api.close()
            for _ in range(args.runs):
                for key, eng in engines.items():
                    api = eng.api()
                    c0 = cpu_seconds(eng.pid)
                    for _ in range(args.list_requests):
                        assert api.call("GET", "/containers/json?all=1")[0] == 200
                    lists.setdefault(key, []).append((cpu_seconds(eng.pid) - c0) / args.list_requests)
                    api.close()
        print(f"\n{args.connections} keep-alive connections, {args.seconds:g} s x {args.runs} runs, interleaved")
        for key in engines:
            print(f"\n{key}:")
            print(f"  idle PSS after start (+2 s) / after 1,000 pings: {pss[key][0]:.1f} / {pss[key][1]:.1f} MB")
            for path, xs in cpu[key].items():
                print(f"  daemon CPU per GET {path}: {fmt(xs, 'us', 1e6, 1)}")
            if key in lists:
                print(f"  daemon CPU per GET /containers/json?all=1 ({args.containers} containers): "
                      f"{fmt(lists[key], 'ms', 1e3, 3)}")


if __name__ == "__main__":
    main()
