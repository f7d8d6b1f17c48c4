"""What seccomp costs per container start (issue 13, finding 6).

    /work/main/.venv/bin/python bench/bench_seccomp.py [-n 30]

* in-process: building the program for Docker's default profile the first time in a daemon
  (JSON load + resolve + compile), a cache miss (a new capability set or custom profile), the cached
  lookup every start pays; and libseccomp 2.5 through ctypes for the same profile (the alternative);
* API create+start+wait+delete of ``true`` (``--network none``) against a private dockyardd with
  the default profile, ``seccomp=unconfined`` and a custom profile, interleaved (same load).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import api_cycle, engine, fmt, report  # noqa: E402

CUSTOM = json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
    {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]})
VARIANTS = {"default": {}, "unconfined": {"SecurityOpt": ["seccomp=unconfined"]},
            "custom profile": {"SecurityOpt": [f"seccomp={CUSTOM}"]}}


def timed(f, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        f()
        out.append(time.perf_counter() - t)
    return out


def in_process(n: int) -> None:
    t = time.perf_counter()
    from dockyard.runtime import capabilities, seccomp
    caps = capabilities.DOCKER_DEFAULT
    seccomp.build(caps)
    report("first build in a daemon (load JSON + resolve + compile)", f"{(time.perf_counter() - t) * 1e3:.1f} ms", {})
    res = seccomp.resolve(seccomp.default_profile(), set(caps))
    report("cache miss (resolve + compile)", fmt(timed(lambda: seccomp.compile_profile(
        seccomp.resolve(seccomp.default_profile(), set(caps))), n)), {})
    report("cached (every start)", fmt(timed(lambda: seccomp.for_container("default", caps, False), n * 10),
                                       "us", 1e6, 2), {})
    report("program", f"{len(seccomp.build(caps)) // 8} instructions", {})
    try:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "unit"))
        import test_seccomp_reference as ref
        if ref.lib is None:
            raise ImportError
    except ImportError:
        print("  (libseccomp.so.2 not found: no comparison)")
        return
    report("libseccomp via ctypes, same profile (init + rules + export)",
           fmt(timed(lambda: ref.libseccomp_program(res), max(5, n // 3))), {})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=30, help="samples of each kind (>= 30)")
    args = ap.parse_args()
    print("seccomp program, in-process:")
    in_process(args.n)
    with engine() as eng:
        api = eng.api()
        names = list(VARIANTS)
        for v in names:  # warm-up (and the one cache miss per variant)
            api_cycle(api, VARIANTS[v])
        cyc: dict = {v: [] for v in names}
        for i in range(args.n):
            for v in names[i % len(names):] + names[:i % len(names)]:
                cyc[v].append(api_cycle(api, VARIANTS[v]))
        api.close()
    print("API create+start+wait+delete of `true` (--network none):")
    for v in names:
        report(v, fmt(cyc[v]), {})
    base = statistics.median(cyc["unconfined"])
    print(f"  default - unconfined: {(statistics.median(cyc['default']) - base) * 1e3:+.2f} ms (median)")


if __name__ == "__main__":
    main()
