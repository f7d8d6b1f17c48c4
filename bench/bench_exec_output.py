"""How often docker-py's ``exec_run`` loses an exec's output, with and without CPU load
(needs root, /bin/busybox, cc).

    /work/main/.venv/bin/python bench/bench_exec_output.py [-n 600] [--load 3]

Against a private dockyardd with one running busybox ``sleep`` container, runs n execs through
docker-py in turn: ``echo i`` (multiplexed), ``echo i`` with a TTY, ``exit 3`` with stdin
attached, a missing binary (127). Counts the runs whose output or exit code is wrong, and the
median time of one ``exec_run``. ``--load K`` keeps K busy loops running meanwhile (CI is a
loaded 2-core machine). docker-py reads the hijacked stream from the raw socket, under the
buffered reader that parsed the 101 headers: output that arrived with the headers was lost
until the daemon began to wait for the headers to be read (``core/api/hijack.py``).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import engine, fmt  # noqa: E402


def run(n: int) -> tuple[list[tuple], list[float]]:
    bad: list[tuple] = []
    times: list[float] = []
    with engine() as eng:
        client = eng.daemon.docker_client()
        try:
            c = client.containers.run("busybox", "sleep 600", detach=True)
            for i in range(n):
                kind = i % 4
                t0 = time.perf_counter()
                if kind == 0:
                    r = c.exec_run(["sh", "-c", f"echo {i}"])
                    ok = r.output == f"{i}\n".encode()
                elif kind == 1:
                    r = c.exec_run(["sh", "-c", f"echo {i}"], tty=True)
                    ok = r.output == f"{i}\r\n".encode()
                elif kind == 2:
                    r = c.exec_run(["sh", "-c", "exit 3"], stdin=True)
                    ok = r.exit_code == 3
                else:
                    r = c.exec_run("nosuchbinary")
                    ok = r.exit_code == 127
                times.append(time.perf_counter() - t0)
                if not ok:
                    bad.append((i, kind, r.exit_code, r.output[:60]))
        finally:
            client.close()
    return bad, times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=600, help="execs (default 600)")
    ap.add_argument("--load", type=int, default=0, metavar="K", help="busy loops running meanwhile")
    args = ap.parse_args()
    print("#", " ".join([sys.executable, *sys.argv]))
    hogs = [subprocess.Popen(["sh", "-c", "while :; do :; done"]) for _ in range(args.load)]
    try:
        bad, times = run(args.n)
    finally:
        for p in hogs:
            p.kill()
            p.wait()
    print(f"  wrong output or exit code: {len(bad)} of {args.n} ({100 * len(bad) / args.n:.2f}%)")
    for b in bad[:10]:
        print("   ", b)
    print(f"  one exec_run: {fmt(times)} (load {args.load})")


if __name__ == "__main__":
    main()
