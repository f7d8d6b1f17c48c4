"""Classic builds (``POST /build``): a 5-step Dockerfile cold (``nocache=1``) and fully cached
(needs root, /bin/busybox, cc).

    /work/main/.venv/bin/python bench/bench_build.py [-n 30] [--steps 5]

Against a private dockyardd with busybox loaded. The context (a Dockerfile and one 64 KiB
file) is tarred once; each build sends it over the Unix socket and reads the build stream to
its end. Cold and cached builds alternate so both see the same machine noise. The Dockerfile
is FROM busybox, then ENV, RUN, COPY, CMD (``--steps 10`` adds WORKDIR, LABEL, RUN, EXPOSE,
USER: the issue's 10-step build). RUN containers get NetworkMode none (the build needs no
network; it keeps network set-up out of the number). dockerd is not installed here, so there
is no side-by-side number.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tarfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import command_line, engine, fmt, report  # noqa: E402

from dockyard_cli.client import UnixHTTPConnection  # noqa: E402

FIVE = ["FROM busybox", "ENV GREETING=hello", "RUN echo built > /built", "COPY data.bin /data.bin",
        'CMD ["cat", "/built"]']
TEN_EXTRA = ["WORKDIR /app", "LABEL bench=build", "RUN wc -c /data.bin > /app/size", "EXPOSE 8080", "USER nobody"]


def context(steps: int) -> bytes:
    lines = FIVE[:-1] + (TEN_EXTRA if steps == 10 else []) + FIVE[-1:]
    files = {"Dockerfile": ("\n".join(lines) + "\n").encode(), "data.bin": os.urandom(64 << 10)}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def build(socket: Path, tar: bytes, nocache: bool) -> float:
    conn = UnixHTTPConnection(str(socket), timeout=300)
    t = time.perf_counter()
    conn.request("POST", f"/build?t=bench:latest&networkmode=none&nocache={int(nocache)}", body=tar,
                 headers={"Content-Type": "application/x-tar"})
    r = conn.getresponse()
    body = r.read()
    dt = time.perf_counter() - t
    conn.close()
    if r.status != 200 or b"errorDetail" in body:
        raise RuntimeError(f"build failed: {r.status} {body[-500:]!r}")
    if not nocache and body.count(b"Using cache") != len(body.split(b"Step ")) - 2:
        raise RuntimeError("the cached build was not fully cached: " + json.dumps(body.decode()[-500:]))
    return dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=30, help="builds of each kind (>= 30)")
    ap.add_argument("--steps", type=int, choices=(5, 10), default=5)
    args = ap.parse_args()
    tar = context(args.steps)
    with engine() as eng:
        build(eng.socket, tar, nocache=True)  # warm-up, and fills the cache
        cold, cached = [], []
        for i in range(args.n):
            for nocache, out in ((True, cold), (False, cached)) if i % 2 else ((False, cached), (True, cold)):
                out.append(build(eng.socket, tar, nocache))
        print(f"{args.steps}-step build over the API:")
        report("cold (nocache=1)", fmt(cold, "s", 1.0, 3), {})
        report("fully cached", fmt(cached, "s", 1.0, 3), {})
    print(f"\n{command_line()}")


if __name__ == "__main__":
    main()
