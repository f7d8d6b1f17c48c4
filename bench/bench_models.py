#!/usr/bin/env python3
"""The typed request model's cost per request (no daemon): decoding a docker CLI 28
``POST /containers/create`` body into the v1.44 Structs (core/api/models.py) and re-encoding it
for the services (``plain``), next to what the edge did before (``json.loads`` with the 64-bit
integer check, no types checked).

    .venv/bin/python bench/bench_models.py [-n 10000] [--repeat 5]

Prints CPU microseconds per request (process time, best of ``--repeat`` runs of ``-n`` each: the
machine may be busy) for each body.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from dockyard.api import models
from dockyard.api.util import _int64

BODIES = Path(__file__).resolve().parent.parent / "tests" / "unit" / "data" / "docker_cli_28_bodies.json"


def per_call_us(fn, raw: bytes, n: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time_ns()
        for _ in range(n):
            fn(raw)
        best = min(best, (time.process_time_ns() - t0) / n / 1000)
    return best


def old_edge(raw: bytes) -> object:
    body = json.loads(raw, parse_int=_int64)
    if not isinstance(body, dict):
        raise ValueError
    return body


def new_decode(raw: bytes) -> object:
    return models.decode(raw, models.ContainerCreateRequest)


def new_edge(raw: bytes) -> object:
    return models.plain(models.decode(raw, models.ContainerCreateRequest))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=10000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    bodies = json.loads(BODIES.read_text())
    print(f"N={args.n}, best of {args.repeat}; microseconds per create body")
    print(f"{'body':34} {'bytes':>6} {'json.loads (before)':>20} {'decode':>8} {'decode+plain (now)':>19} {'delta':>7}")
    for name in ("container_create_plain", "container_create_rich", "container_create_tty_privileged"):
        raw = json.dumps(bodies[name]).encode()
        new_edge(raw)  # build the decoder once
        old = per_call_us(old_edge, raw, args.n, args.repeat)
        dec = per_call_us(new_decode, raw, args.n, args.repeat)
        new = per_call_us(new_edge, raw, args.n, args.repeat)
        print(f"{name:34} {len(raw):6d} {old:20.1f} {dec:8.1f} {new:19.1f} {new - old:+7.1f}")


if __name__ == "__main__":
    main()
