"""The long chaos run (issue 14): the CI harness (``tests/chaos``, :mod:`dockyard.testing.chaos`)
with bigger numbers, printing its figures: operations, kills, violations, leaks.

    sudo .venv/bin/python bench/chaos.py [--operations 3000] [--threads 4] [--kills 80] [--seed N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from dockyard.testing.chaos import Chaos
from dockyard.testing.images import busybox_image_tar


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--operations", type=int, default=3000)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--kills", type=int, default=80)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="dockyard-chaos-") as tmp:
        base = Path(tmp)
        tar = busybox_image_tar(base / "busybox.tar")
        chaos = Chaos(base / "run", tar, operations=args.operations, threads=args.threads, kills=args.kills,
                      seed=args.seed, log=(lambda s: None) if args.quiet else (lambda s: print(s, flush=True)))
        r = chaos.run()
    print(r.figures())
    for title, lines in (("violations", r.violations), ("unexpected answers", r.unexpected), ("leaks", r.leaks)):
        if lines:
            print(f"{title}:")
            for line in lines:
                print(f"  {line}")
    return 1 if r.violations or r.leaks else 0


if __name__ == "__main__":
    sys.exit(main())
