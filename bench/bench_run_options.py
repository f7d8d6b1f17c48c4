"""What the run options of ``containers/options.py`` and ``containers/startopts.py`` cost.

    /work/main/.venv/bin/python bench/bench_run_options.py [-n 30]

* in-process: ``options.check`` + ``settle_mac`` on a request with many fields set (the check
  every create now pays);
* API create+start+wait+delete of ``true`` (``--network none``) against a private dockyardd,
  in variants: default, ``Domainname`` (a UTS namespace made and pinned before the start,
  unpinned after it), ``Sysctls net.*`` (written in the container's network namespace);
  the variants are interleaved, so they see the same load;
* a refused create (``Runtime: foo``): the 400 round trip.

dockerd is not installed here: no side-by-side run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import api_cycle, command_line, create_body, engine, fmt, report  # noqa: E402

VARIANTS = {
    "default": ({}, {}),
    "Domainname": ({"Hostname": "boat", "Domainname": "sea.example"}, {}),
    "Sysctls net.ipv4.ip_unprivileged_port_start": ({}, {"Sysctls": {"net.ipv4.ip_unprivileged_port_start": "53"}}),
}


def refused(api) -> float:
    body = create_body("true", Runtime="foo")
    t = time.perf_counter()
    status, out = api.call("POST", "/containers/create", body)
    dt = time.perf_counter() - t
    assert status == 400, out
    return dt


def check_cost(n: int) -> list[float]:
    from types import SimpleNamespace

    from dockyard.containers import options

    hc = {"NetworkMode": "default", "Runtime": "runc", "LogConfig": {"Type": "json-file", "Config": {}},
          "Sysctls": {"net.ipv4.ip_forward": "1"}, "SecurityOpt": ["no-new-privileges"], "IpcMode": "shareable",
          "Mounts": [{"Type": "bind", "Source": "/tmp", "Target": "/x", "BindOptions": {}}],
          "MemorySwappiness": -1, "Isolation": "default"}
    rt = SimpleNamespace(name="native")
    out = []
    for _ in range(n):
        t = time.perf_counter()
        for _ in range(100):
            options.check({"MacAddress": "02:00:00:00:00:01"}, hc, runtime=rt, storage=None, networking={})
            options.settle_mac({"MacAddress": "02:00:00:00:00:01"}, hc, {"bridge": {"MacAddress": ""}})
        out.append((time.perf_counter() - t) / 100)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=30, help="samples of each kind (>= 30)")
    args = ap.parse_args()
    print("options.check + settle_mac, in-process:")
    report("per create", fmt(check_cost(args.n), "us", 1e6), {})
    with engine() as eng:
        api = eng.api()
        names = list(VARIANTS)
        for v in names:  # warm-up
            api_cycle(api, VARIANTS[v][1], **VARIANTS[v][0])
        cyc: dict = {v: [] for v in names}
        ref: list[float] = []
        for i in range(args.n):
            for v in names[i % len(names):] + names[:i % len(names)]:  # rotating order
                cyc[v].append(api_cycle(api, VARIANTS[v][1], **VARIANTS[v][0]))
            ref.append(refused(api))
        api.close()
    print("API create+start+wait+delete of `true` (--network none):")
    for v in names:
        report(v, fmt(cyc[v]), {})
    print("refused create (Runtime foo), round trip:")
    report("400", fmt(ref), {})
    print(f"\n{command_line()}")


if __name__ == "__main__":
    main()
